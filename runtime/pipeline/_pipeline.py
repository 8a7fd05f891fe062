"""The supervised pipeline: the one engine every way of running work uses.

Shape (every arrow is bounded)::

    durable queue --lease--> intake --route(key)--> worker inbox --> worker
        worker --route(key)--> outbound inbox --> outbound actor --> sinks --> settler
        worker (no sinks) ------------------------------------------------> settler
        settler --ack_many--> durable queue; failures --fail--> durable queue
        lease keeper --heartbeat_many--> durable queue (every lease held, one write)

The root supervisor (one-for-one) owns the intake (leases items when room frees up and
routes them by key), the workers and the outbound actors (each a ``PartitionSupervisor``:
one child per partition, a crash restarts that partition only, and its inbox survives),
the settler (acknowledges successes in batches), the lease keeper (extends the leases of
every item held in memory) and a pressure monitor, which samples the durable queue and the
in-memory intake and acts by policy: throttle intake and submissions, tell handlers they
are degraded, shed the lowest-priority waiting items, or reject submissions.

``garrison work``, ``garrison run``, the demo and :class:`runtime.worker.Worker` all run
this; nothing else leases, heartbeats, fails or settles items.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Sequence

import anyio
import msgspec
from anyio.abc import TaskStatus
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from policies import PressureAction, PressureLevel
from runtime import telemetry
from runtime._errors import PressureRejected
from runtime._loop import fast_clock
from runtime._structure import first_leaf
from runtime.actors import ActorStatistics
from runtime.pipeline._config import PipelineConfig
from runtime.pipeline._flight import Flight, SettledHook
from runtime.pipeline._handler import Handler, adapt_handler, default_owner
from runtime.pipeline._intake import Intake
from runtime.pipeline._outbound import Outbound
from runtime.pipeline._pressure import PressureGauge
from runtime.pipeline._settler import Settler
from runtime.pipeline._sinks import Sink
from runtime.pipeline._threads import ThreadPool, ThreadPoolStatistics
from runtime.pipeline._workers import Workers
from runtime.store import EnqueueResult, NewItem, Store
from supervisors import ChildSpec, LoopWatch, Supervisor, SupervisorEscalation

__all__ = ["Pipeline", "PipelineStatistics"]


class PipelineStatistics(msgspec.Struct, frozen=True):
    """A snapshot of a pipeline."""

    leased: int
    succeeded: int
    failed: int
    dead_lettered: int
    timeouts: int
    effects_skipped: int
    stale: int
    in_flight: int
    max_in_flight: int
    capacity: int
    submitted: int
    rejected: int
    shed: int
    queue_level: PressureLevel
    intake_level: PressureLevel
    degraded: bool
    worker_restarts: int
    worker_hangs: int
    pressure_transitions: int
    stopping: bool
    held: int = 0
    drain_completed: bool = False
    threads: ThreadPoolStatistics | None = None


def _print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Pipeline:
    """Runs ``handler`` on every item of ``store`` under supervision, delivering its result
    to ``sinks``.

    Args:
        store: the durable queue (any :class:`~runtime.store.Store`).
        handler: ``handler(item)`` or ``handler(item, ctx)`` (read once from its
            signature), sync or async; its return value (bytes or None) goes to the sinks.
            Raising fails the attempt (retry policy of the store). Sync handlers run on a
            bounded thread pool (``config.threads``).
        sinks: outbound sinks; each effect is recorded in the store's effects ledger so a
            redelivered or replayed item skips effects already delivered.
        config: bounds and policies.
        name: the root supervisor's name (telemetry, logs).
        owner: the lease owner (default: host, pid and a random suffix).
        seed: seeds the sink retry jitter.
        on_settled: called with every attempt's item and :class:`Outcome` once the store
            has it (sync or async; keep it quick, it runs on the settling path).
        on_progress: where ``[progress]`` lines go (default: stderr), with
            ``config.progress_interval_s``.
        tracer_provider, meter_provider: for the supervisors' restart, hang and
            escalation telemetry (default: the OpenTelemetry globals).

    Raises:
        ValidationFailed: the handler takes neither ``(item)`` nor ``(item, ctx)``.
    """

    def __init__(
        self,
        store: Store,
        handler: Handler,
        *,
        sinks: Sequence[Sink] = (),
        config: PipelineConfig | None = None,
        name: str = "pipeline",
        owner: str | None = None,
        seed: int | None = None,
        on_settled: SettledHook | None = None,
        on_progress: Callable[[str], None] | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.store = store
        self.config = cfg = config or PipelineConfig()
        self.name = name
        self.owner = owner or default_owner()
        self.threads = ThreadPool(cfg.threads, cfg.max_abandoned_threads, name=name)
        adapted = adapt_handler(handler, self.threads)
        self._rng = random.Random(seed)
        self._on_progress = on_progress or _print_progress
        self.progress = telemetry.Progress(self.owner, clock=anyio.current_time)
        self._flight = flight = Flight(cfg.capacity, self.progress, on_settled)
        self._stopping = anyio.Event()
        self._accepted_since_sample = 0
        self.queue_pressure = PressureGauge("queue", cfg.pressure, store)
        self.intake_pressure = PressureGauge("intake", cfg.intake_pressure, store)
        self.settler = Settler(store, cfg, flight)
        self._workers = Workers(
            store,
            cfg,
            flight,
            self.settler,
            adapted,
            owner=self.owner,
            degraded=lambda: self.degraded,
            name=name,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        self.workers = self._workers.partitions
        self.outbound: Outbound | None = None
        if sinks:
            self.outbound = self._workers.outbound = Outbound(
                store,
                sinks,
                cfg,
                delivered=self.settler.delivered,
                undelivered=self.settler.undelivered,
                released=flight.release,
                rng=self._rng,
                name=name,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
            )
        self.intake = Intake(
            store,
            cfg,
            flight,
            self._workers,
            self.intake_pressure,
            owner=self.owner,
            stopping=self._stopping,
            drained=self._drain_completed,
        )
        #: The blocked-loop watchdog of the tree (``config.loop_watch``), or None.
        self.loop_watch = LoopWatch(cfg.loop_watch) if cfg.loop_watch else None
        self.root = Supervisor(
            [
                *self.intake.child_specs(),
                self.workers.child_spec("workers"),
                *([self.outbound.child_spec("outbound")] if self.outbound else []),
                self.settler.child_spec(),
                ChildSpec(id="lease_keeper", start=self.settler.keep_leases, shutdown_timeout=1.0),
                ChildSpec(id="pressure", start=self._watch_pressure, shutdown_timeout=1.0),
                *([self.loop_watch.child_spec()] if self.loop_watch else []),
            ],
            policy=cfg.root_restarts,
            name=name,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        self.drained = False
        self.drain_completed = False

    # -- life cycle --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop intake; in-flight items get ``drain_timeout_s`` to finish. Idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.intake.close()

    def stop_when_drained(self) -> None:
        """Stop (as :meth:`stop`) once nothing is waiting, scheduled or leased: what
        ``config.drain`` asks for, for a pipeline built by someone else (``garrison run
        --drain``)."""
        self.intake.drain = True

    def _drain_completed(self) -> None:
        self.drain_completed = True
        self.stop()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> bool:
        """Run until :meth:`stop` (or, with ``drain``, until nothing is left); return True
        if every in-flight item finished in time.

        Raises:
            SupervisorEscalation: the pipeline's supervision tree gave up.

        Cancellation: cancels in-flight handlers at once (their leases expire and they run
        again); use :meth:`stop` for a graceful stop.
        """
        cfg = self.config
        self._workers.bind(fast_clock(), anyio.get_cancelled_exc_class())
        flight = self._flight
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self.root.run)
                if cfg.progress_interval_s is not None:
                    self.progress.start()
                    tg.start_soon(self._progress_loop, cfg.progress_interval_s)
                task_status.started()
                await self._stopping.wait()
                # Parked items were never begun: let them go rather than wait on retries
                # the stopped intake will not lease.
                self._workers.let_go_of_parked()
                with anyio.move_on_after(cfg.drain_timeout_s):
                    while flight.items:
                        await flight.freed()
                self.drained = not flight.items
                tg.cancel_scope.cancel()
        except* SupervisorEscalation as group:
            raise first_leaf(group) from None
        finally:
            self.workers.close()
            if self.outbound is not None:
                self.outbound.close()
        if cfg.progress_interval_s is not None:
            # A last line on the way out: what this pipeline did in total.
            self._on_progress(self.progress_line())
        return self.drained

    @property
    def stopped_cleanly(self) -> bool:
        """After :meth:`run`: whether every in-flight item finished before the deadline."""
        return self.drained

    async def _progress_loop(self, interval_s: float) -> None:
        await telemetry.run_progress(
            self.progress,
            interval_s,
            in_flight=lambda: len(self._flight.items),
            emit=self._on_progress,
        )

    def progress_line(self) -> str:
        """A ``[progress]`` line now (starts a new interval for the per-interval figures)."""
        snapshot = self.progress.snapshot(in_flight=len(self._flight.items))
        return telemetry.format_progress(snapshot)

    def statistics(self) -> PipelineStatistics:
        """Counters and levels, for progress views, metrics and tests."""
        workers = self.workers.statistics().supervisor
        flight = self._flight
        return PipelineStatistics(
            **flight.counts,
            effects_skipped=0 if self.outbound is None else self.outbound.effects_skipped,
            in_flight=len(flight.items),
            max_in_flight=flight.max_in_flight,
            capacity=flight.capacity,
            queue_level=self.queue_pressure.level,
            intake_level=self.intake_pressure.level,
            degraded=self.degraded,
            worker_restarts=workers.restarts_total,
            worker_hangs=workers.hangs_total,
            pressure_transitions=self.queue_pressure.transitions + self.intake_pressure.transitions,
            stopping=self._stopping.is_set(),
            held=flight.held,
            drain_completed=self.drain_completed,
            threads=self.threads.statistics(),
        )

    def stages(self) -> dict[str, ActorStatistics]:
        """A snapshot of every stage actor (intake, outbound, settler) by name."""
        stats = {a.name: a.statistics() for a in self.intake.actors}
        stats[self.settler.actor.name] = self.settler.actor.statistics()
        if self.outbound is not None:
            stats.update((a.name, a.statistics()) for a in self.outbound.actors)
        return stats

    @property
    def degraded(self) -> bool:
        """Whether a pressure level in force asks handlers to degrade."""
        return PressureAction.DEGRADE in (
            self.queue_pressure.actions + self.intake_pressure.actions
        )

    # -- submissions -------------------------------------------------------------------

    async def submit(self, item: NewItem) -> EnqueueResult:
        """Enqueue an item in-process, under the pipeline's pressure policy.

        Rejected while the durable queue is full or at a level whose actions include
        ``reject``, and while the pipeline's own intake is (its workers cannot keep up);
        paced while the queue's level throttles.

        Raises:
            PressureRejected: with the channel (``queue`` or ``intake``), level and depth.
            ValidationFailed: the item was refused at the gate.
        """
        gauge = self.queue_pressure
        # The hard bound holds between samples too: the last sample plus what was accepted
        # since can never pass the configured capacity.
        full = gauge.depth + self._accepted_since_sample >= self.config.queue_capacity
        refused = gauge if full or PressureAction.REJECT in gauge.actions else None
        if refused is None and PressureAction.REJECT in self.intake_pressure.actions:
            refused = self.intake_pressure
        if refused is not None:
            self._flight.counts["rejected"] += 1
            refused.note_rejected(item.topic)
            what = "full" if full else refused.level.value
            raise PressureRejected(
                f"{refused.channel} is {what} (depth {refused.depth}); submission rejected",
                channel=refused.channel,
                level=refused.level.value,
                depth=refused.depth,
            )
        if PressureAction.THROTTLE in gauge.actions:
            await gauge.throttle()
        self._accepted_since_sample += 1
        try:
            result = await self.store.enqueue(item)
        except BaseException:
            self._accepted_since_sample -= 1
            raise
        self._flight.counts["submitted"] += 1
        return result

    # -- pressure ----------------------------------------------------------------------

    async def _watch_pressure(self, *, task_status: TaskStatus[None]) -> None:
        """The pressure monitor: sample, act by policy, report transitions."""
        cfg = self.config
        task_status.started()
        while True:
            accepted_before = self._accepted_since_sample
            depth = await self.store.depth()
            waiting = depth["enqueued"] + depth["retry_scheduled"]
            # Submissions accepted before the sample are in it; later ones still count.
            self._accepted_since_sample -= accepted_before
            await self.queue_pressure.update(waiting, cfg.queue_capacity)
            await self.intake_pressure.update(len(self._flight.items), self._flight.capacity)
            if PressureAction.SHED in self.queue_pressure.actions:
                excess = waiting - self.queue_pressure.shed_target(cfg.queue_capacity)
                if excess > 0:
                    shed = await self.store.shed(excess, dead_letter=cfg.pressure.shed_dead_letter)
                    self._flight.counts["shed"] += len(shed)
                    self.queue_pressure.note_shed(len(shed))
            await anyio.sleep(cfg.pressure_interval_s)
