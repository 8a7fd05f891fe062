"""The supervised pipeline a service embeds: intake, keyed workers, sinks, pressure.

Shape (every arrow is bounded)::

    durable queue --lease--> intake --route(key)--> partition inbox --> worker --> sinks
                                                                          |--> ack / fail

The root supervisor (one-for-one) owns three children: the intake (leases items and
routes them by key), the workers (a ``PartitionSupervisor``: one worker per partition, a
crash restarts that partition only, and its inbox survives), and the lease keeper (extends
the leases of every item held in memory). A pressure monitor samples the durable queue and
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

from policies import PressureAction, PressureLevel, RestartPolicy
from runtime import telemetry
from runtime._errors import PressureRejected, StaleLease
from runtime._structure import first_leaf
from runtime.pipeline._config import PipelineConfig
from runtime.pipeline._pressure import PressureGauge
from runtime.pipeline._sinks import (
    Sink,
    SinkFailed,
    deliver,
    effect_key,
    may_have_effects,
    origin_id,
)
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
        self._sinks = tuple(sinks)
        self._rng = random.Random(seed)
        self._in_flight: dict[str, WorkItem] = {}
        self._capacity = cfg.partitions * cfg.inbox_size + cfg.intake_size
        self._stopping = anyio.Event()
        self._settled = anyio.Event()
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "leased",
                "succeeded",
                "failed",
                "dead_lettered",
                "timeouts",
                "effects_skipped",
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
            tuple[WorkItem, list[str], float, float]
        ](self._capacity)
        self.queue_pressure = PressureGauge("queue", cfg.pressure, store)
        self.intake_pressure = PressureGauge("intake", cfg.pressure, store)
        self.workers: PartitionSupervisor[WorkItem] = PartitionSupervisor(
            cfg.partitions,
            self._partition,
            inbox_size=cfg.inbox_size,
            policy=cfg.worker_restarts,
            name=f"{name}.workers",
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
                ChildSpec(id="settler", start=self._settle, shutdown_timeout=1.0),
                ChildSpec(id="lease_keeper", start=self._keep_leases, shutdown_timeout=1.0),
                ChildSpec(id="pressure", start=self._watch_pressure, shutdown_timeout=1.0),
            ],
            policy=RestartPolicy(max_restarts=10, period_s=10.0),
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
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self.root.run)
                task_status.started()
                await self._stopping.wait()
                with anyio.move_on_after(self.config.drain_timeout_s):
                    while self._in_flight:
                        self._settled = anyio.Event()
                        await self._settled.wait()
                self.drained = not self._in_flight
                tg.cancel_scope.cancel()
        except* SupervisorEscalation as group:
            raise first_leaf(group) from None
        finally:
            self.workers.close()
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
        """Enqueue an item in-process, under the durable queue's pressure policy.

        Raises:
            PressureRejected: the queue is at a level whose actions include ``reject``.
            ValidationFailed: the item was refused at the gate.
        """
        gauge = self.queue_pressure
        # The hard bound holds between samples too: the last sample plus what was accepted
        # since can never pass the configured capacity.
        full = gauge.depth + self._accepted_since_sample >= self.config.queue_capacity
        if full or PressureAction.REJECT in gauge.actions:
            self._counts["rejected"] += 1
            gauge.note_rejected(item.topic)
            raise PressureRejected(
                f"queue is {gauge.level.value} (depth {gauge.depth}); submission rejected",
                channel="queue",
                level=gauge.level.value,
                depth=gauge.depth,
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
        cfg = self.config
        task_status.started()
        while not self._stopping.is_set():
            room = self._capacity - len(self._in_flight)
            items: list[WorkItem] = []
            if room > 0:
                if PressureAction.THROTTLE in self.intake_pressure.actions:
                    await self.intake_pressure.throttle()
                items = await self.store.lease(self.owner, min(room, cfg.lease_batch), cfg.lease_s)
            for item in items:
                self._counts["leased"] += 1
                self._in_flight[item.id] = item
                self._max_in_flight = max(self._max_in_flight, len(self._in_flight))
                # Waits while the partition's inbox is full: backpressure up to the lease.
                await self.workers.send(item.key or item.id, item)
            if not items:
                with anyio.move_on_after(cfg.poll_interval_s):
                    await self._stopping.wait()

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
        hb = self.config.heartbeat_timeout_s
        idle = math.inf if hb is None else hb / 2
        async with inbox:
            while True:
                heartbeat()
                item: WorkItem | None = None
                # Wake up now and then while idle, so an idle worker is not taken for hung.
                with anyio.move_on_after(idle):
                    try:
                        item = await inbox.receive()
                    except anyio.EndOfStream:
                        return
                if item is not None:
                    await self._process(index, item)

    async def _process(self, index: int, item: WorkItem) -> None:
        latency = self.store.now() - item.available_at
        began = time.perf_counter()
        outcome = "failed"
        try:
            with telemetry.process_span(item, owner=self.owner):
                outcome, error = await self._attempt(index, item, latency, began)
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
            # A pending item stays in flight (its lease kept) until the settler acks it.
            if outcome != "pending":
                self._in_flight.pop(item.id, None)
                self._settled.set()

    async def _attempt(
        self, index: int, item: WorkItem, latency: float, began: float
    ) -> tuple[str, Exception | None]:
        """Handle, deliver, settle; return the outcome and the handler's error if any.

        Success is handed to the settler, which acknowledges in batches (``pending``): the
        worker moves on to its next item at once, in key order.

        Timeouts and sink failures are failures of the attempt, never crashes; a handler
        exception is handed back so that, with ``let_it_crash``, the worker crashes after
        the failure is recorded.
        """
        cfg = self.config
        token = item.lease_token or ""
        ctx = HandlerContext(degraded=self.degraded, partition=index)
        delivered: list[str] = []
        try:
            with anyio.fail_after(cfg.handler_timeout_s):
                result = await self._handler(item, ctx)
            if self._sinks:
                check = may_have_effects(item)
                origin = await origin_id(self.store, item) if item.replay_of else item.id
                for sink in self._sinks:
                    heartbeat()  # each finished step is progress, not a hang
                    key = effect_key(sink, item, origin)
                    if check and await self.store.has_effect(key):
                        self._counts["effects_skipped"] += 1
                        continue
                    try:
                        await deliver(
                            sink,
                            item,
                            result,
                            key,
                            timeout_s=cfg.sink_timeout_s,
                            policy=cfg.sink_retry,
                            rng=self._rng,
                        )
                    except SinkFailed:
                        # Keep what was delivered, so the retry skips it.
                        for done in delivered:
                            await self.store.record_effect(done, item.id)
                        raise
                    delivered.append(key)
        except TimeoutError as exc:
            self._counts["timeouts"] += 1
            return await self._fail(item, token, exc, timeout=True), None
        except SinkFailed as exc:
            self._counts["timeouts"] += exc.timeout
            return await self._fail(item, token, exc, timeout=exc.timeout), None
        except Exception as exc:
            return await self._fail(item, token, exc, timeout=False), exc
        await self._acks_send.send((item, delivered, latency, began))
        return "pending", None

    async def _settle(self, *, task_status: TaskStatus[None]) -> None:
        """Acknowledge successful items in batches (one transaction per batch)."""
        task_status.started()
        while True:
            batch = [await self._acks_receive.receive()]
            while len(batch) < 512:
                try:
                    batch.append(self._acks_receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            try:
                refused = await self.store.ack_many(
                    [(item.id, item.lease_token or "") for item, _, _, _ in batch],
                    effects={item.id: keys for item, keys, _, _ in batch if keys},
                )
            except BaseException:
                # Not acknowledged: let go of them, their leases expire and they run again.
                for item, _, _, _ in batch:
                    self._in_flight.pop(item.id, None)
                self._settled.set()
                raise
            now = time.perf_counter()
            for (item, _, latency, began), error in zip(batch, refused, strict=True):
                outcome = "succeeded" if error is None else "stale"
                self._counts[outcome] += 1
                telemetry.settled(item, outcome, duration_s=now - began, queue_latency_s=latency)
                self._in_flight.pop(item.id, None)
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
