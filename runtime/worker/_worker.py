"""``Worker``: the queue-worker view of the one engine (:class:`runtime.pipeline.Pipeline`).

A worker is a pipeline with a handler, no sinks and one partition per unit of
concurrency: :class:`WorkerConfig` is mapped onto :class:`~runtime.pipeline.PipelineConfig`
(:meth:`WorkerConfig.pipeline_config`) and everything else — leasing, handing off,
timeouts, settling, lease extension, supervision — is the pipeline's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import anyio
import msgspec
from anyio.abc import TaskStatus

from policies import check_bounds
from runtime import telemetry
from runtime._structure import build
from runtime.pipeline import Handler, Pipeline, PipelineConfig, SettledHook
from runtime.store import Store

__all__ = ["Worker", "WorkerConfig", "WorkerStatistics", "worker_config"]

Count = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]


class WorkerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of a worker.

    Attributes:
        concurrency: items handled at once: one worker partition each (keyless items go
            to any free one; items of one key are handled one at a time, in order).
        lease_s: lease length; leases of items held are extended every third of it.
        lease_batch: most items taken in one lease call, and how many are leased ahead of
            the handlers. Big batches cut the writer's round trips per item (a no-op drain
            measured 64: ~6.4k items/s, 256: ~7.5k, 512: ~8.1k, from the shell); lower it
            when slow items should spread over several worker processes.
        poll_interval_s: when idle, how soon another process's enqueue is seen (one in
            this process wakes the worker at once).
        handler_timeout_s: a handler running longer fails with reason ``timeout``.
        shutdown_timeout_s: how long in-flight items may finish after a stop.
        drain: stop once no item is waiting, scheduled or leased.
        topics: lease only these topics (all when empty).
        progress_interval_s: print a ``[progress]`` line this often (never when None).
        threads: threads sync handlers run on (see ``PipelineConfig.threads``).
        max_abandoned_threads: hung sync handler threads tolerated beside them.
        let_it_crash: a handler exception also crashes (and restarts) its partition.

    Raises:
        ValidationFailed: a bound is not met (``field`` names it).
    """

    concurrency: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 8
    lease_s: Seconds = 30.0
    lease_batch: Count = 256
    poll_interval_s: Seconds = 0.2
    handler_timeout_s: Seconds | None = None
    shutdown_timeout_s: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    drain: bool = False
    topics: tuple[str, ...] = ()
    progress_interval_s: Seconds | None = None
    threads: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 32
    max_abandoned_threads: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 64
    let_it_crash: bool = False

    def __post_init__(self) -> None:
        check_bounds(self)

    def pipeline_config(self) -> PipelineConfig:
        """The :class:`PipelineConfig` this worker runs with."""
        return PipelineConfig(
            partitions=self.concurrency,
            # Two items per partition plus a lease batch ahead: a handler never waits for
            # the settler's ack or the next lease.
            inbox_size=2,
            intake_size=self.lease_batch,
            lease_s=self.lease_s,
            lease_batch=self.lease_batch,
            poll_interval_s=self.poll_interval_s,
            topics=self.topics,
            handler_timeout_s=self.handler_timeout_s,
            threads=self.threads,
            max_abandoned_threads=self.max_abandoned_threads,
            drain=self.drain,
            progress_interval_s=self.progress_interval_s,
            let_it_crash=self.let_it_crash,
            drain_timeout_s=self.shutdown_timeout_s,
        )


class WorkerStatistics(msgspec.Struct, frozen=True):
    """Counters of a worker since it started."""

    owner: str
    leased: int
    succeeded: int
    failed: int
    stale: int
    in_flight: int
    stopping: bool
    drained: bool


class Worker:
    """Runs ``handler`` on items leased from ``store`` until stopped or drained.

    Args:
        store: the durable queue.
        handler: ``handler(item)`` or ``handler(item, ctx)``, sync or async.
        config: see :class:`WorkerConfig`.
        owner: the lease owner name (default: host, pid, random suffix).
        on_settled: called with each item and its outcome once the store has it.
        on_progress: where ``[progress]`` lines go (default: stderr).

    Raises:
        ValidationFailed: the handler takes neither ``(item)`` nor ``(item, ctx)``.
    """

    def __init__(
        self,
        store: Store,
        handler: Handler,
        config: WorkerConfig | None = None,
        *,
        owner: str | None = None,
        on_settled: SettledHook | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.config = config or WorkerConfig()
        self.pipeline = Pipeline(
            store,
            handler,
            config=self.config.pipeline_config(),
            name="worker",
            owner=owner,
            on_settled=on_settled,
            on_progress=on_progress,
        )
        self.owner = self.pipeline.owner
        self.progress: telemetry.Progress = self.pipeline.progress
        self._ran = False

    def stop(self) -> None:
        """Stop leasing; in-flight items get ``shutdown_timeout_s`` to finish."""
        self.pipeline.stop()

    @property
    def drained(self) -> bool:
        """Whether drain mode found nothing left and stopped."""
        return self.pipeline.drain_completed

    @property
    def completed_shutdown(self) -> bool:
        """After :meth:`run`: whether no in-flight item was cut off by the deadline."""
        return not self._ran or self.pipeline.drained

    @property
    def stopped_cleanly(self) -> bool:
        """After :meth:`run`: whether no in-flight item was cut off by the deadline."""
        return self.completed_shutdown

    def statistics(self) -> WorkerStatistics:
        """A snapshot of the worker's counters."""
        p = self.pipeline.statistics()
        return WorkerStatistics(
            owner=self.owner,
            leased=p.leased,
            succeeded=p.succeeded,
            failed=p.failed,
            stale=p.stale,
            in_flight=p.in_flight,
            stopping=p.stopping,
            drained=p.drain_completed,
        )

    def progress_line(self) -> str:
        """A ``[progress]`` line now (starts a new interval for the per-interval figures)."""
        return self.pipeline.progress_line()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Work until stopped or (with ``drain``) until nothing is left.

        Raises:
            SupervisorEscalation: the worker's supervision tree gave up.

        Cancellation: cancels in-flight handlers at once; use :meth:`stop` for a graceful
        stop. ``completed_shutdown`` is False afterwards if the shutdown deadline cut
        in-flight items short.
        """
        self._ran = True
        await self.pipeline.run(task_status=task_status)


def worker_config(**options: Any) -> WorkerConfig:
    """A :class:`WorkerConfig` from keyword options, with a typed error on bad values.

    Raises:
        ValidationFailed: an option is out of bounds or of the wrong type.
    """
    return build(WorkerConfig, **options)
