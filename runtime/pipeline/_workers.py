"""The workers: one supervised child per partition, each handling its inbox's items one at
a time, in key order, under the handler timeout; and the routing of leased items to them.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from runtime import telemetry
from runtime._loop import receive_within
from runtime.pipeline._config import KeyOrder, PipelineConfig
from runtime.pipeline._flight import Flight
from runtime.pipeline._handler import AsyncHandler, HandlerContext
from runtime.pipeline._outbound import Handled, Outbound
from runtime.pipeline._outcome import Outcome
from runtime.pipeline._settler import Entry, Settler
from runtime.pipeline._watchdog import HandlerWatch
from runtime.store import Store, WorkItem
from supervisors import ChildSpec, PartitionSupervisor, heartbeat, partition_for

__all__ = ["Workers"]

# A message to the settler costs it a scheduler round trip: quick successes travel
# together, up to this many, and none waits longer than this (seconds) for company.
_SEND_EVERY = 16
_SEND_AGE = 0.002
_NO_EFFECTS: list[str] = []


def _partition_keys(partitions: int) -> list[str]:
    """One routing key per partition, so keyless items can be sent to a chosen one."""
    keys: list[str | None] = [None] * partitions
    missing = partitions
    for n in itertools.count():
        index = partition_for(str(n), partitions)
        if keys[index] is None:
            keys[index] = str(n)
            missing -= 1
            if not missing:
                break
    return [k for k in keys if k is not None]


class Workers:
    """``partitions`` worker children under a :class:`PartitionSupervisor`.

    Items with a key go to their key's partition (one key's items are handled one at a
    time, in lease order); keyless items go to the next partition with room, so a free
    handler slot is never left idle behind a busy one. With ``strict`` key order, an item
    whose key waits for an earlier item's retry is parked (still leased, its lease
    extended) and handled once that item succeeded or was dead-lettered.
    """

    def __init__(
        self,
        store: Store,
        config: PipelineConfig,
        flight: Flight,
        settler: Settler,
        handler: AsyncHandler,
        *,
        owner: str,
        degraded: Callable[[], bool],
        name: str,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._flight = flight
        self._settler = settler
        self._handler = handler
        self._owner = owner
        self._degraded = degraded
        self._strict = config.key_order is KeyOrder.STRICT
        self.outbound: Outbound | None = None
        self.partitions: PartitionSupervisor[WorkItem] = PartitionSupervisor(
            config.partitions,
            self._partition,
            inbox_size=config.inbox_size,
            policy=config.restarts,
            name=f"{name}.workers",
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        self._keys = _partition_keys(config.partitions)
        self._next = 0
        self._contexts: dict[tuple[bool, int], HandlerContext] = {}
        # Strict key order: key -> the item whose retry it waits for; parked items by key;
        # per partition, parked items released and due before its inbox.
        self._blocked: dict[str, str] = {}
        self._parked: dict[str, deque[WorkItem]] = {}
        self._ready: list[deque[WorkItem]] = [deque() for _ in range(config.partitions)]
        # Per partition, successes not sent to the settler yet: sent together when the
        # worker is about to wait, has _SEND_EVERY of them, or the oldest is _SEND_AGE old.
        self._unsent: list[list[Entry]] = [[] for _ in range(config.partitions)]
        # Bound to the running event loop by bind().
        self._clock: Callable[[], float] = time.monotonic
        self._cancelled: type[BaseException] = BaseException
        #: Strict order: items let go of because ``max_held`` items were parked already.
        self.let_go = 0

    def bind(self, clock: Callable[[], float], cancelled: type[BaseException]) -> None:
        """Use the running loop's clock and cancellation exception."""
        self._clock = clock
        self._cancelled = cancelled

    # -- routing -------------------------------------------------------------------------

    async def route(self, item: WorkItem) -> None:
        """Put a leased item in its partition's inbox, waiting while that one is full."""
        parts = self.partitions
        key = item.key
        if key:
            try:
                parts.send_nowait(key, item)
            except anyio.WouldBlock:
                # The partition's inbox is full: backpressure up to the lease.
                await parts.send(key, item)
            return
        keys = self._keys
        n = len(keys)
        start = self._next
        for step in range(n):
            index = (start + step) % n
            try:
                parts.send_nowait(keys[index], item)
            except anyio.WouldBlock:
                continue
            self._next = index + 1
            return
        self._next = start + 1
        await parts.send(keys[start % n], item)

    def let_go_of_parked(self) -> int:
        """Release parked items from memory (a stop: they were not begun, their leases
        expire and they run again); return how many."""
        count = sum(len(q) for q in self._parked.values())
        for queue in self._parked.values():
            for item in queue:
                self._flight.release(item)
        self._parked.clear()
        self._flight.held = 0
        return count

    # -- a partition -----------------------------------------------------------------------

    def _partition(self, index: int, inbox: MemoryObjectReceiveStream[WorkItem]) -> ChildSpec:
        return ChildSpec(
            id=f"worker-{index}",
            start=partial(self._work, index, inbox),
            heartbeat_timeout=self._config.heartbeat_timeout_s,
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
        limit = self._config.handler_timeout_s
        watch = HandlerWatch(math.inf if limit is None else limit, self._clock)
        crash: Exception | None = None
        async with inbox, anyio.create_task_group() as tg:
            if limit is not None:
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
            finally:
                self._let_go_of_unsent(index)
            tg.cancel_scope.cancel()
        if crash is not None:
            raise crash

    async def _work_segment(
        self, index: int, inbox: MemoryObjectReceiveStream[WorkItem], watch: HandlerWatch
    ) -> bool:
        """Handle items until the inbox ends (return True) or the segment is cancelled."""
        hb = self._config.heartbeat_timeout_s
        idle = math.inf if hb is None else hb / 2
        # A heartbeat moves a deadline; one per eighth of the timeout is plenty (an item
        # is then reported hung after 7/8 to 1 heartbeat timeout).
        beat_every = math.inf if hb is None else hb / 8
        clock = self._clock
        beat_at = -math.inf
        handled = 0
        ready = self._ready[index]
        strict = self._strict
        unsent = self._unsent[index]
        while True:
            now = clock()
            if now - beat_at >= beat_every:
                heartbeat()
                beat_at = now
            if unsent and (len(unsent) >= _SEND_EVERY or now - unsent[0][0].handled_at > _SEND_AGE):
                await self._send(index)
            if ready:
                item = ready.popleft()
            else:
                try:
                    item = inbox.receive_nowait()
                except anyio.WouldBlock:
                    # About to wait: what was handled goes to the settler first.
                    if unsent:
                        await self._send(index)
                    try:
                        received = await receive_within(inbox, idle)
                    except anyio.EndOfStream:
                        return True
                    if received is None:
                        continue
                    item = received
                except anyio.EndOfStream:
                    return True
            if strict and self._park(item):
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

    async def _send(self, index: int) -> None:
        """Send partition ``index``'s successes to the settler, in one message."""
        unsent = self._unsent[index]
        entries = unsent.copy()
        unsent.clear()  # in place: the worker loop holds this list
        await self._settler.send(entries)

    def _let_go_of_unsent(self, index: int) -> None:
        """A worker ends (a crash, a stop) with successes not sent: send them if the
        settler takes them at once, else release them (their leases expire, they rerun)."""
        unsent = self._unsent[index]
        entries = unsent.copy()
        unsent.clear()
        if entries and not self._settler.send_nowait(entries):
            for handled, _ in entries:
                self._flight.release(handled.item)

    def _park(self, item: WorkItem) -> bool:
        """Strict order: hold ``item`` if its key waits for another item's retry."""
        key = item.key
        if not key:
            return False
        blocker = self._blocked.get(key)
        if blocker is None or blocker == item.id:
            return False
        flight = self._flight
        if flight.held >= self._config.max_held:
            # Past the bound: let go of it (no write). Its lease expires and it is leased
            # again later, behind its key's earlier items.
            self.let_go += 1
            flight.release(item)
            return True
        self._parked.setdefault(key, deque()).append(item)
        flight.held += 1
        return True

    def _ordered(self, index: int, item: WorkItem, outcome: Outcome) -> None:
        """Strict order: a retry blocks the key; its blocker's end releases parked items."""
        key = item.key
        if not key:
            return
        if outcome is Outcome.RETRY_SCHEDULED:
            self._blocked[key] = item.id
        elif self._blocked.get(key) == item.id:
            del self._blocked[key]
            parked = self._parked.pop(key, None)
            if parked:
                self._flight.held -= len(parked)
                self._ready[index].extend(parked)
                self._flight.wake()

    async def _process(self, index: int, item: WorkItem, watch: HandlerWatch) -> Outcome:
        latency = self._store.now() - item.available_at
        began = time.perf_counter()
        outcome = Outcome.PENDING
        released = True
        try:
            with telemetry.process_span(item, owner=self._owner) as span:
                outcome, error = await self._attempt(index, item, latency, began, watch)
                if outcome is Outcome.PENDING:
                    released = False
                    if span.is_recording():
                        # The handler's part is done; the settler counts the ack.
                        span.set_attribute("garrison.outcome", Outcome.SUCCEEDED.value)
                else:
                    telemetry.settled(
                        item,
                        outcome,
                        duration_s=time.perf_counter() - began,
                        queue_latency_s=latency,
                        error=error,
                    )
            if self._strict:
                self._ordered(index, item, outcome)
            if outcome is not Outcome.PENDING:
                told = self._flight.observe(item, outcome, latency)
                if told is not None:
                    await told
            if error is not None and self._config.let_it_crash:
                raise error
        finally:
            # A pending item stays in flight (its lease kept) until it is settled.
            if released:
                self._flight.release(item)
        return outcome

    async def _attempt(
        self, index: int, item: WorkItem, latency: float, began: float, watch: HandlerWatch
    ) -> tuple[Outcome, Exception | None]:
        """Handle the item and pass it on; return the outcome and the handler's error.

        Success goes to the outbound actors (with sinks) or straight to the settler, which
        acknowledges in batches (``pending``): the worker moves on to its next item at
        once, in key order.

        A timeout is a failure of the attempt, never a crash; a handler exception is
        handed back so that, with ``let_it_crash``, the worker crashes after the failure
        is recorded.
        """
        degraded = self._degraded()
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
            error = TimeoutError(f"handler ran past {self._config.handler_timeout_s} s")
        except Exception as exc:
            error = exc
        finally:
            watch.end()
        if watch.tripped:
            # The watchdog cancelled the segment: record this item's outcome shielded; the
            # cancellation lands at the worker's next wait.
            with anyio.CancelScope(shield=True):
                return await self._pass_on(index, item, result, error, latency, began)
        return await self._pass_on(index, item, result, error, latency, began)

    async def _pass_on(
        self,
        index: int,
        item: WorkItem,
        result: bytes | None,
        error: Exception | None,
        latency: float,
        began: float,
    ) -> tuple[Outcome, Exception | None]:
        if error is None:
            handled = Handled(item, result, latency, began, self._clock())
            if self.outbound is not None:
                await self.outbound.send(handled)
            else:
                # Sent with the partition's next successes (see _work_segment).
                self._unsent[index].append((handled, _NO_EFFECTS))
            return Outcome.PENDING, None
        if isinstance(error, TimeoutError):
            self._flight.counts["timeouts"] += 1
            return await self._settler.fail(item, error, timeout=True), None
        return await self._settler.fail(item, error, timeout=False), error
