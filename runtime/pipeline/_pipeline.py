"""The supervised pipeline a service embeds: intake, keyed workers, sinks, pressure.

Shape (every arrow is bounded)::

    durable queue --lease--> intake --route(key)--> worker inbox --> worker
        worker --route(key)--> outbound inbox --> outbound actor --> sinks --> settler
        worker (no sinks) ------------------------------------------------> settler
        settler --ack_many--> durable queue; failures --fail--> durable queue

The root supervisor (one-for-one) owns the intake (leases items and routes them by key),
the workers and the outbound actors (each a ``PartitionSupervisor``: one child per
partition, a crash restarts that partition only, and its inbox survives), the settler
(acknowledges successes in batches) and the lease keeper (extends the leases of every item
held in memory). A pressure monitor samples the durable queue and
the in-memory intake and acts by policy: throttle intake and submissions, tell handlers
they are degraded, shed the lowest-priority waiting items, or reject submissions.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from policies import PressureAction, PressureLevel
from runtime import telemetry
from runtime._errors import PressureRejected, StaleLease
from runtime._loop import fast_clock, receive_within
from runtime._structure import first_leaf
from runtime.pipeline._config import PipelineConfig
from runtime.pipeline._outbound import Handled, Outbound
from runtime.pipeline._pressure import PressureGauge
from runtime.pipeline._sinks import Sink, SinkFailed
from runtime.pipeline._watchdog import HandlerWatch
from runtime.store import EnqueueResult, NewItem, Store, WorkItem
from runtime.worker._handler import failure_from
from runtime.worker._worker import default_owner
from supervisors import (
    ChildSpec,
    PartitionSupervisor,
    Restart,
    Supervisor,
    SupervisorEscalation,
    heartbeat,
)

log = logging.getLogger("garrison.pipeline")


class HandlerContext(msgspec.Struct, frozen=True):
    """What a handler is told besides the item: whether the runtime is degraded (skip
    optional work), and which partition runs it."""

    degraded: bool
    partition: int


Handler = Callable[[WorkItem, HandlerContext], Awaitable[bytes | None] | bytes | None]


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


def _as_async(handler: Handler) -> Callable[[WorkItem, HandlerContext], Awaitable[Any]]:
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004
    ):
        return handler  # type: ignore[return-value]

    async def in_thread(item: WorkItem, ctx: HandlerContext) -> Any:
        return await anyio.to_thread.run_sync(partial(handler, item, ctx), abandon_on_cancel=True)

    return in_thread


class Pipeline:
    """Runs ``handler`` on every item of ``store`` under supervision, delivering its result
    to ``sinks``.

    Args:
        store: the durable queue (any :class:`~runtime.store.Store`).
        handler: ``handler(item, ctx)``, sync or async; its return value (bytes or None)
            goes to the sinks. Raising fails the attempt (retry policy of the store).
        sinks: outbound sinks; each effect is recorded in the store's effects ledger so a
            redelivered or replayed item skips effects already delivered.
        config: bounds and policies.
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
    ) -> None:
        self.store = store
        self.config = cfg = config or PipelineConfig()
        self.name = name
        self.owner = owner or default_owner()
        self._handler = _as_async(handler)
        self._rng = random.Random(seed)
        # Bound to the running event loop by run().
        self._clock: Callable[[], float] = time.monotonic
        self._cancelled: type[BaseException] = BaseException
        self._in_flight: dict[str, WorkItem] = {}
        self._capacity = cfg.partitions * cfg.inbox_size + cfg.intake_size
        self._stopping = anyio.Event()
        self._settled = anyio.Event()
        self._reserved = 0  # room taken by leases not yet returned
        self._contexts: dict[tuple[bool, int], HandlerContext] = {}
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "leased",
                "succeeded",
                "failed",
                "dead_lettered",
                "timeouts",
                "stale",
                "submitted",
                "rejected",
                "shed",
            ),
            0,
        )
        self._max_in_flight = 0
        self._accepted_since_sample = 0
        # Successful items wait here for a batched ack; bounded like everything in memory.
        self._acks_send, self._acks_receive = anyio.create_memory_object_stream[
            tuple[Handled, list[str]]
        ](self._capacity)
        self.queue_pressure = PressureGauge("queue", cfg.pressure, store)
        self.intake_pressure = PressureGauge("intake", cfg.intake_pressure, store)
        self.workers: PartitionSupervisor[WorkItem] = PartitionSupervisor(
            cfg.partitions,
            self._partition,
            inbox_size=cfg.inbox_size,
            policy=cfg.worker_restarts,
            name=f"{name}.workers",
        )
        self.outbound: Outbound | None = None
        if sinks:
            self.outbound = Outbound(
                store,
                sinks,
                cfg,
                delivered=self._delivered,
                undelivered=self._undelivered,
                rng=self._rng,
                name=name,
            )
        self.root = Supervisor(
            [
                # Transient: it ends normally once the pipeline stops taking work.
                ChildSpec(
                    id="intake",
                    start=self._intake,
                    restart=Restart.TRANSIENT,
                    shutdown_timeout=1.0,
                ),
                self.workers.child_spec("workers"),
                *([self.outbound.partitions.child_spec("outbound")] if self.outbound else []),
                ChildSpec(id="settler", start=self._settle, shutdown_timeout=1.0),
                ChildSpec(id="lease_keeper", start=self._keep_leases, shutdown_timeout=1.0),
                ChildSpec(id="pressure", start=self._watch_pressure, shutdown_timeout=1.0),
            ],
            policy=cfg.root_restarts,
            name=name,
        )
        self.drained = False

    # -- life cycle --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop intake; in-flight items get ``drain_timeout_s`` to finish."""
        self._stopping.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> bool:
        """Run until :meth:`stop`; return True if every in-flight item finished in time.

        Raises:
            SupervisorEscalation: the pipeline's supervision tree gave up.
        """
        self._clock = fast_clock()
        self._cancelled = anyio.get_cancelled_exc_class()
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self.root.run)
                task_status.started()
                await self._stopping.wait()
                with anyio.move_on_after(self.config.drain_timeout_s):
                    while self._in_flight:
                        await self._wait_settled()
                self.drained = not self._in_flight
                tg.cancel_scope.cancel()
        except* SupervisorEscalation as group:
            raise first_leaf(group) from None
        finally:
            self.workers.close()
            if self.outbound is not None:
                self.outbound.close()
        return self.drained

    @property
    def stopped_cleanly(self) -> bool:
        """After :meth:`run`: whether every in-flight item finished before the deadline."""
        return self.drained

    def statistics(self) -> PipelineStatistics:
        """Counters and levels, for progress views, metrics and tests."""
        workers = self.workers.statistics().supervisor
        return PipelineStatistics(
            **self._counts,
            effects_skipped=0 if self.outbound is None else self.outbound.effects_skipped,
            in_flight=len(self._in_flight),
            max_in_flight=self._max_in_flight,
            capacity=self._capacity,
            queue_level=self.queue_pressure.level,
            intake_level=self.intake_pressure.level,
            degraded=self.degraded,
            worker_restarts=workers.restarts_total,
            worker_hangs=workers.hangs_total,
            pressure_transitions=self.queue_pressure.transitions + self.intake_pressure.transitions,
            stopping=self._stopping.is_set(),
        )

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
            self._counts["rejected"] += 1
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
        self._counts["submitted"] += 1
        return result

    # -- children ----------------------------------------------------------------------

    async def _intake(self, *, task_status: TaskStatus[None]) -> None:
        task_status.started()
        # Several leases in flight at once: while one waits for the writer, the items of
        # the last are being handled, so the workers are not starved by lease latency.
        async with anyio.create_task_group() as tg:
            for _ in range(self.config.lease_concurrency):
                tg.start_soon(self._lease_loop)

    async def _lease_loop(self) -> None:
        cfg = self.config
        # Leasing a handful at a time costs a writer round trip per handful: wait until a
        # worthwhile batch fits.
        worthwhile = max(1, min(cfg.lease_batch, self._capacity) // 2)
        while not self._stopping.is_set():
            room = self._capacity - len(self._in_flight) - self._reserved
            if room < worthwhile:
                await self._wait_settled(cfg.poll_interval_s)
                continue
            if PressureAction.THROTTLE in self.intake_pressure.actions:
                await self.intake_pressure.throttle()
            n = min(room, cfg.lease_batch)
            # Reserved before the await, so concurrent leases never pass the capacity.
            self._reserved += n
            try:
                items = await self.store.lease(self.owner, n, cfg.lease_s)
                for item in items:
                    self._in_flight[item.id] = item
            finally:
                self._reserved -= n
            self._counts["leased"] += len(items)
            self._max_in_flight = max(self._max_in_flight, len(self._in_flight))
            for item in items:
                try:
                    self.workers.send_nowait(item.key or item.id, item)
                except anyio.WouldBlock:
                    # The partition's inbox is full: backpressure up to the lease.
                    await self.workers.send(item.key or item.id, item)
            if not items:
                with anyio.move_on_after(cfg.poll_interval_s):
                    await self._stopping.wait()
            else:
                await anyio.lowlevel.checkpoint()

    async def _wait_settled(self, timeout: float = math.inf) -> None:
        """Wait until an in-flight item is settled, or ``timeout`` passes."""
        if self._settled.is_set():
            self._settled = anyio.Event()
        with anyio.move_on_after(timeout):
            await self._settled.wait()

    def _partition(self, index: int, inbox: MemoryObjectReceiveStream[WorkItem]) -> ChildSpec:
        return ChildSpec(
            id=f"worker-{index}",
            start=partial(self._work, index, inbox),
            heartbeat_timeout=self.config.heartbeat_timeout_s,
            shutdown_timeout=1.0,
        )

    async def _work(
        self,
        index: int,
        inbox: MemoryObjectReceiveStream[WorkItem],
        *,
        task_status: TaskStatus[Any],
    ) -> None:
        task_status.started()
        watch = HandlerWatch(self.config.handler_timeout_s, self._clock)
        crash: Exception | None = None
        async with inbox, anyio.create_task_group() as tg:
            tg.start_soon(watch.run)
            try:
                while True:
                    with watch.segment():
                        if await self._work_segment(index, inbox, watch):
                            break
                    # The watchdog ended the segment (a handler overran; that item has
                    # been failed with reason timeout): carry on in a new one.
            except Exception as exc:
                # Raised after the task group, so the supervisor sees the handler's own
                # exception (its type in restart records), not a group around it.
                crash = exc
            tg.cancel_scope.cancel()
        if crash is not None:
            raise crash

    async def _work_segment(
        self, index: int, inbox: MemoryObjectReceiveStream[WorkItem], watch: HandlerWatch
    ) -> bool:
        """Handle items until the inbox ends (return True) or the segment is cancelled."""
        hb = self.config.heartbeat_timeout_s
        idle = math.inf if hb is None else hb / 2
        # A heartbeat moves a deadline; one per eighth of the timeout is plenty (an item
        # is then reported hung after 7/8 to 1 heartbeat timeout).
        beat_every = math.inf if hb is None else hb / 8
        clock = self._clock
        beat_at = -math.inf
        handled = 0
        while True:
            now = clock()
            if now - beat_at >= beat_every:
                heartbeat()
                beat_at = now
            try:
                item = await receive_within(inbox, idle)
            except anyio.EndOfStream:
                return True
            if item is None:
                continue
            await self._process(index, item, watch)
            if watch.tripped:
                # This segment is cancelled: the next item must start in a fresh one, or
                # its first await would be taken for its own timeout.
                return False
            handled += 1
            if handled % 16 == 0:
                # Items taken without waiting and a handler that never awaits would
                # otherwise starve the intake and the settler.
                await anyio.lowlevel.checkpoint()

    async def _process(self, index: int, item: WorkItem, watch: HandlerWatch) -> None:
        latency = self.store.now() - item.available_at
        began = time.perf_counter()
        outcome = "failed"
        try:
            with telemetry.process_span(item, owner=self.owner):
                outcome, error = await self._attempt(index, item, latency, began, watch)
                if outcome != "pending":
                    telemetry.settled(
                        item,
                        outcome,
                        duration_s=time.perf_counter() - began,
                        queue_latency_s=latency,
                        error=error,
                    )
            if error is not None and self.config.let_it_crash:
                raise error
        finally:
            # A pending item stays in flight (its lease kept) until it is settled.
            if outcome != "pending":
                self._release(item)

    def _release(self, item: WorkItem) -> None:
        self._in_flight.pop(item.id, None)
        self._settled.set()

    async def _attempt(
        self, index: int, item: WorkItem, latency: float, began: float, watch: HandlerWatch
    ) -> tuple[str, Exception | None]:
        """Handle the item and pass it on; return the outcome and the handler's error.

        Success goes to the outbound actors (with sinks) or straight to the settler, which
        acknowledges in batches (``pending``): the worker moves on to its next item at
        once, in key order.

        A timeout is a failure of the attempt, never a crash; a handler exception is
        handed back so that, with ``let_it_crash``, the worker crashes after the failure
        is recorded.
        """
        degraded = self.degraded
        ctx = self._contexts.get((degraded, index))
        if ctx is None:  # one per partition and flag: the context is immutable
            ctx = self._contexts[degraded, index] = HandlerContext(degraded, index)
        error: Exception | None = None
        result: bytes | None = None
        watch.begin()
        try:
            result = await self._handler(item, ctx)
        except self._cancelled:
            if not watch.tripped:
                raise
            error = TimeoutError(f"handler ran past {self.config.handler_timeout_s} s")
        except Exception as exc:
            error = exc
        finally:
            watch.end()
        if watch.tripped:
            # The watchdog cancelled the segment: record this item's outcome shielded; the
            # cancellation lands at the worker's next wait.
            with anyio.CancelScope(shield=True):
                return await self._pass_on(item, result, error, latency, began)
        return await self._pass_on(item, result, error, latency, began)

    async def _pass_on(
        self,
        item: WorkItem,
        result: bytes | None,
        error: Exception | None,
        latency: float,
        began: float,
    ) -> tuple[str, Exception | None]:
        if error is None:
            handled = Handled(item, result, latency, began)
            if self.outbound is not None:
                await self.outbound.send(handled)
            else:
                await self._delivered(handled, [])
            return "pending", None
        token = item.lease_token or ""
        if isinstance(error, TimeoutError):
            self._counts["timeouts"] += 1
            return await self._fail(item, token, error, timeout=True), None
        return await self._fail(item, token, error, timeout=False), error

    async def _delivered(self, handled: Handled, effects: list[str]) -> None:
        """Hand a successful item to the settler (the outbound actors call this)."""
        entry = (handled, effects)
        try:
            # No reschedule per item while the settler keeps up; the worker yields anyway.
            self._acks_send.send_nowait(entry)
        except anyio.WouldBlock:
            await self._acks_send.send(entry)

    async def _undelivered(self, handled: Handled, error: SinkFailed) -> None:
        """A sink failed every try: the item's attempt fails (outbound actors call this)."""
        item = handled.item
        self._counts["timeouts"] += error.timeout
        try:
            outcome = await self._fail(item, item.lease_token or "", error, timeout=error.timeout)
            telemetry.settled(
                item,
                outcome,
                duration_s=time.perf_counter() - handled.began,
                queue_latency_s=handled.queue_latency_s,
                error=error,
            )
        finally:
            self._release(item)

    async def _settle(self, *, task_status: TaskStatus[None]) -> None:
        """Acknowledge successful items in batches (one transaction per batch)."""
        task_status.started()
        limit = self.config.ack_batch
        while True:
            batch = [await self._acks_receive.receive()]
            while len(batch) < limit:
                try:
                    batch.append(self._acks_receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            try:
                refused = await self.store.ack_many(
                    [(h.item.id, h.item.lease_token or "") for h, _ in batch],
                    effects={h.item.id: keys for h, keys in batch if keys},
                )
            except BaseException:
                # Not acknowledged: let go of them, their leases expire and they run again.
                for h, _ in batch:
                    self._in_flight.pop(h.item.id, None)
                self._settled.set()
                raise
            now = time.perf_counter()
            for (h, _), error in zip(batch, refused, strict=True):
                outcome = "succeeded" if error is None else "stale"
                self._counts[outcome] += 1
                telemetry.settled(
                    h.item, outcome, duration_s=now - h.began, queue_latency_s=h.queue_latency_s
                )
                self._in_flight.pop(h.item.id, None)
            self._settled.set()

    async def _fail(self, item: WorkItem, token: str, exc: BaseException, *, timeout: bool) -> str:
        self._counts["failed"] += 1
        try:
            outcome = await self.store.fail(item.id, token, failure_from(exc, timeout=timeout))
        except StaleLease:
            self._counts["stale"] += 1
            return "stale"
        if outcome.reason is not None:
            self._counts["dead_lettered"] += 1
        return outcome.state.value

    async def _keep_leases(self, *, task_status: TaskStatus[None]) -> None:
        task_status.started()
        period = self.config.lease_s / 3
        while True:
            await anyio.sleep(period)
            for item_id, item in list(self._in_flight.items()):
                # StaleLease: settled meanwhile, or lost; its outcome will be refused too.
                with contextlib.suppress(StaleLease):
                    await self.store.heartbeat(item_id, item.lease_token or "", self.config.lease_s)

    async def _watch_pressure(self, *, task_status: TaskStatus[None]) -> None:
        cfg = self.config
        task_status.started()
        while True:
            accepted_before = self._accepted_since_sample
            depth = await self.store.depth()
            waiting = depth["enqueued"] + depth["retry_scheduled"]
            # Submissions accepted before the sample are in it; later ones still count.
            self._accepted_since_sample -= accepted_before
            await self.queue_pressure.update(waiting, cfg.queue_capacity)
            await self.intake_pressure.update(len(self._in_flight), self._capacity)
            if PressureAction.SHED in self.queue_pressure.actions:
                excess = waiting - self.queue_pressure.shed_target(cfg.queue_capacity)
                if excess > 0:
                    shed = await self.store.shed(excess, dead_letter=cfg.pressure.shed_dead_letter)
                    self._counts["shed"] += len(shed)
                    self.queue_pressure.note_shed(len(shed))
            await anyio.sleep(cfg.pressure_interval_s)
