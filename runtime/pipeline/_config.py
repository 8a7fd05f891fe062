"""Configuration of a pipeline. Every bound is a number with a safe default."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from policies import (
    Backoff,
    PressureAction,
    PressurePolicy,
    RestartPolicy,
    RetryPolicy,
    ValidationFailed,
    check_bounds,
)
from supervisors import LoopWatchConfig

__all__ = ["KeyOrder", "PipelineConfig"]

Count = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]


class KeyOrder(enum.StrEnum):
    """How strictly the items of one key keep their enqueue order."""

    RELAXED = "relaxed"
    """One key's items are handled one at a time in lease order; a failed item's retry
    comes back after the key's later items (the common, fastest mode)."""
    STRICT = "strict"
    """A key's later items are held while an earlier one waits for its retry, and handled
    once it succeeded or was dead-lettered: effects happen in enqueue order across
    retries."""


def default_worker_restarts(partitions: int) -> RestartPolicy:
    """The workers' restart policy when none is given: a backoff from 0.1 s doubling to
    5 s per partition, and an intensity that a burst of crashing items on every partition
    stays under for as long as it lasts (each partition restarts at most about 7 times
    in a 10 s window with this backoff)."""
    return RestartPolicy(
        max_restarts=max(100, 10 * partitions),
        period_s=10.0,
        backoff=Backoff(min_s=0.1, max_s=5.0, multiplier=2.0, jitter=0.1),
    )


class PipelineConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of a :class:`~runtime.pipeline.Pipeline`.

    Attributes:
        partitions: worker partitions, each running one handler at a time; items are
            routed by key, so per-key order holds (keyless items go to any free one).
        inbox_size: bound of each partition's inbox.
        intake_size: items leased ahead of the partitions' inboxes.
        max_in_flight: most items held in memory (leased, not settled); default
            ``partitions * inbox_size + intake_size``. Leasing waits for a settle when full.
        lease_s: lease length; the leases of items held are extended every third of it,
            all in one ``heartbeat_many`` write.
        lease_batch: most items per lease call.
        lease_concurrency: lease calls in flight at once (the intake's pipelining depth).
        ack_batch: most successes the settler acknowledges in one transaction.
        poll_interval_s: when idle, how soon an item enqueued by *another* process is seen
            (an item enqueued in this process wakes the intake at once).
        topics: lease only these topics (all when empty).
        handler_timeout_s: a handler call running longer fails with reason ``timeout``
            (None: no limit). An async handler is cancelled; a sync one is abandoned.
        heartbeat_timeout_s: a worker silent this long is cancelled and restarted (``hang``).
        threads: the thread pool sync handlers run on (at most this many at once). The
            default suits I/O-bound handlers; CPU-bound sync handlers gain nothing past
            one thread per core (the GIL).
        max_abandoned_threads: sync handler threads abandoned after a timeout and still
            running that are tolerated beside the pool; past it each further one takes a
            pool slot until it ends (see :class:`~runtime.pipeline.ThreadPool`).
        drain: stop once nothing is waiting, scheduled or leased (``--drain``).
        key_order: :class:`KeyOrder`; ``strict`` holds a key's later items while an
            earlier one waits for its retry.
        max_held: most items ``strict`` key order parks at once (they do not count
            against ``max_in_flight``, so parked items never stop the earlier item's
            retry from being leased); past it a further item of a waiting key is let go
            of: its lease expires and it is leased again later (the expiry counts as an
            attempt).
        progress_interval_s: emit a ``[progress]`` line this often (never when None).
        outbound_partitions: outbound actors delivering results to the sinks, keyed like the
            workers (so one key's effects are delivered in order); unused without sinks.
        outbound_inbox_size: bound of each outbound actor's inbox.
        sink_timeout_s: each delivery attempt's timeout.
        sink_retry: in-place retries of a failing sink before the item's attempt fails.
        let_it_crash: a handler exception fails the item and also crashes its worker, which
            its supervisor restarts (OTP style); off, it only fails the item.
        drain_timeout_s: how long in-flight items may finish after a stop.
        queue_capacity: the durable queue depth that counts as full for pressure.
        pressure: watermarks and actions for the durable queue's depth (waiting items
            against ``queue_capacity``): by default throttle and degrade when elevated,
            and also shed and reject submissions when critical.
        intake_pressure: watermarks and actions for the pipeline's in-memory intake (items
            held against its capacity). A full intake is normal under a burst (the queue
            holds the rest), so by default it only asks handlers to degrade when
            critical; ``reject`` refuses submissions and ``throttle`` paces leasing.
            ``shed`` is refused here: items in memory are leased work, never dropped.
        pressure_interval_s: how often the durable queue's depth is sampled.
        worker_restarts: restart policy of the workers' and outbound actors' supervisors;
            None: :func:`default_worker_restarts` (a restart backoff is on by default, so a
            burst of crashing items does not escalate to the root).
        root_restarts: restart intensity of the pipeline's root supervisor (its intake,
            settler, lease keeper, pressure monitor and the two partition supervisors).
        loop_watch: run a :class:`~supervisors.LoopWatch` in the root supervisor: a thread
            that reports (log with the loop's stack, span, counter) an event loop blocked
            past its threshold, e.g. by a sync call in an async handler. None: off.

    Raises:
        ValidationFailed: a bound is not met (``field`` names it), or ``intake_pressure``
            would shed.
    """

    partitions: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 8
    inbox_size: Count = 16
    intake_size: Count = 64
    max_in_flight: Count | None = None
    lease_s: Seconds = 30.0
    lease_batch: Count = 32
    lease_concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    ack_batch: Count = 512
    poll_interval_s: Seconds = 0.1
    topics: tuple[str, ...] = ()
    handler_timeout_s: Seconds | None = 30.0
    heartbeat_timeout_s: Seconds | None = None
    threads: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 32
    max_abandoned_threads: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 64
    drain: bool = False
    key_order: KeyOrder = KeyOrder.RELAXED
    max_held: Count = 1024
    progress_interval_s: Seconds | None = None
    outbound_partitions: Count = 4
    outbound_inbox_size: Count = 16
    sink_timeout_s: Seconds = 10.0
    sink_retry: RetryPolicy = RetryPolicy(max_attempts=3, base_delay_s=0.05, max_delay_s=1.0)
    let_it_crash: bool = False
    drain_timeout_s: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    queue_capacity: Count = 100_000
    pressure: PressurePolicy = PressurePolicy()
    intake_pressure: PressurePolicy = PressurePolicy(
        elevated=(), critical=(PressureAction.DEGRADE,)
    )
    pressure_interval_s: Seconds = 0.5
    worker_restarts: RestartPolicy | None = None
    root_restarts: RestartPolicy = RestartPolicy(max_restarts=10, period_s=10.0)
    loop_watch: LoopWatchConfig | None = None

    def __post_init__(self) -> None:
        check_bounds(self)
        if PressureAction.SHED in self.intake_pressure.elevated + self.intake_pressure.critical:
            raise ValidationFailed(
                "intake_pressure cannot shed: items in memory are leased work",
                field="intake_pressure",
            )

    @property
    def capacity(self) -> int:
        """The most items held in memory at once."""
        if self.max_in_flight is not None:
            return self.max_in_flight
        return self.partitions * self.inbox_size + self.intake_size

    @property
    def restarts(self) -> RestartPolicy:
        """The workers' restart policy in force (see ``worker_restarts``)."""
        if self.worker_restarts is not None:
            return self.worker_restarts
        return default_worker_restarts(self.partitions)
