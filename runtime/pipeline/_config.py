"""Configuration of a pipeline. Every bound is a number with a safe default."""

from __future__ import annotations

import msgspec

from policies import PressureAction, PressurePolicy, RestartPolicy, RetryPolicy


class PipelineConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of a :class:`~runtime.pipeline.Pipeline`.

    Attributes:
        partitions: worker partitions; items are routed by key, so per-key order holds.
        inbox_size: bound of each partition's inbox.
        intake_size: bound of the intake channel between leasing and the partitions.
        lease_s: lease length; leases of items held in memory are extended every third.
        lease_batch: most items per lease call.
        lease_concurrency: lease calls in flight at once (the intake's pipelining depth).
        ack_batch: most successes the settler acknowledges in one transaction.
        poll_interval_s: wait between lease calls that found nothing.
        handler_timeout_s: a handler call running longer fails with reason ``timeout``.
        heartbeat_timeout_s: a worker silent this long is cancelled and restarted (``hang``).
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
        worker_restarts: restart intensity of the workers' and outbound actors' supervisors.
        root_restarts: restart intensity of the pipeline's root supervisor (its intake,
            settler, lease keeper, pressure monitor and the two partition supervisors).
    """

    partitions: int = 8
    inbox_size: int = 16
    intake_size: int = 64
    lease_s: float = 30.0
    lease_batch: int = 32
    lease_concurrency: int = 2
    ack_batch: int = 512
    poll_interval_s: float = 0.1
    handler_timeout_s: float = 30.0
    heartbeat_timeout_s: float | None = None
    outbound_partitions: int = 4
    outbound_inbox_size: int = 16
    sink_timeout_s: float = 10.0
    sink_retry: RetryPolicy = RetryPolicy(max_attempts=3, base_delay_s=0.05, max_delay_s=1.0)
    let_it_crash: bool = False
    drain_timeout_s: float = 30.0
    queue_capacity: int = 100_000
    pressure: PressurePolicy = PressurePolicy()
    intake_pressure: PressurePolicy = PressurePolicy(
        elevated=(), critical=(PressureAction.DEGRADE,)
    )
    pressure_interval_s: float = 0.5
    worker_restarts: RestartPolicy = RestartPolicy(max_restarts=100, period_s=10.0)
    root_restarts: RestartPolicy = RestartPolicy(max_restarts=10, period_s=10.0)

    def __post_init__(self) -> None:
        for name in (
            "partitions",
            "inbox_size",
            "intake_size",
            "lease_batch",
            "lease_concurrency",
            "ack_batch",
            "queue_capacity",
            "outbound_partitions",
            "outbound_inbox_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in (
            "lease_s",
            "poll_interval_s",
            "handler_timeout_s",
            "sink_timeout_s",
            "pressure_interval_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.drain_timeout_s < 0:
            raise ValueError("drain_timeout_s must not be negative")
        if PressureAction.SHED in self.intake_pressure.elevated + self.intake_pressure.critical:
            raise ValueError("intake_pressure cannot shed: items in memory are leased work")
        if self.heartbeat_timeout_s is not None and not self.heartbeat_timeout_s > 0:
            raise ValueError("heartbeat_timeout_s must be positive")
