"""The intake: leases items when there is room for them and routes them to the workers.

It never polls for room: it waits on the *freed* event settles set. It polls the store
only while idle, for other processes' enqueues, every ``poll_interval_s``; an enqueue in
this process wakes it at once.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from policies import PressureAction
from runtime.pipeline._config import PipelineConfig
from runtime.pipeline._flight import Flight
from runtime.pipeline._pressure import PressureGauge
from runtime.pipeline._workers import Workers
from runtime.store import Store

__all__ = ["Intake"]


class Intake:
    """Leasing for one pipeline: ``lease_concurrency`` lease loops sharing its room."""

    def __init__(
        self,
        store: Store,
        config: PipelineConfig,
        flight: Flight,
        workers: Workers,
        pressure: PressureGauge,
        *,
        owner: str,
        stopping: anyio.Event,
        drained: Callable[[], None],
    ) -> None:
        self._store = store
        self._config = config
        self._flight = flight
        self._workers = workers
        self._pressure = pressure
        self._owner = owner
        self._stopping = stopping
        self._drained = drained
        self._idle_scopes: set[anyio.CancelScope] = set()
        self.idle_waits = 0
        self._tickets = 0
        self._turn = 0
        self._finished_turns: set[int] = set()
        self._turned = anyio.Event()
        #: Stop the pipeline once nothing is left (``config.drain``, ``--drain``).
        self.drain = config.drain

    def wake(self) -> None:
        """End idle waits now (a stop)."""
        for scope in self._idle_scopes:
            scope.cancel()
        self._flight.wake()

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """The intake child: returns once the pipeline stops taking work."""
        task_status.started()
        # Several leases in flight at once: while one waits for the writer, the items of
        # the last are being handled, so the workers are not starved by lease latency.
        async with anyio.create_task_group() as tg:
            for _ in range(self._config.lease_concurrency):
                tg.start_soon(self._lease_loop)

    async def _lease_loop(self) -> None:
        cfg = self._config
        flight = self._flight
        store = self._store
        route = self._workers.route
        topics = cfg.topics or None
        # Leasing a handful at a time costs a writer round trip per handful: wait until a
        # worthwhile batch fits.
        worthwhile = max(1, min(cfg.lease_batch, flight.capacity) // 2)
        while not self._stopping.is_set():
            room = flight.room()
            if room < 1 or flight.held >= cfg.max_held:
                await flight.freed()
                continue
            if room < worthwhile:
                # Some room, not a worthwhile batch: wait for more to free up, but not
                # past a poll interval, so a few slots are not left idle behind handlers
                # that all run long.
                with anyio.move_on_after(cfg.poll_interval_s) as waited:
                    await flight.freed()
                if not waited.cancelled_caught:
                    continue
            if PressureAction.THROTTLE in self._pressure.actions:
                await self._pressure.throttle()
            n = min(flight.room(), cfg.lease_batch)
            if n < 1:
                continue
            flight.reserve(n)
            mark = store.ready_mark()
            # Leases run in the order they are called (the store serialises them), so an
            # earlier ticket holds a key's earlier items: route in ticket order, or a
            # lease that waits for inbox room would let a later one overtake it.
            ticket = self._tickets
            self._tickets += 1
            try:
                items = await store.lease(self._owner, n, cfg.lease_s, topics)
            except BaseException:
                flight.leased(n, [])
                self._turn_done(ticket)
                raise
            flight.leased(n, items)
            try:
                while self._turn != ticket:
                    await self._turned.wait()
                for item in items:
                    await route(item)
            finally:
                self._turn_done(ticket)
            if items:
                await anyio.lowlevel.checkpoint()
                continue
            if self.drain and await self._finished():
                self._drained()
                return
            await self._idle(mark)

    def _turn_done(self, ticket: int) -> None:
        """``ticket`` routed (or gave up): let the next one route."""
        self._finished_turns.add(ticket)
        while self._turn in self._finished_turns:
            self._finished_turns.discard(self._turn)
            self._turn += 1
        self._turned.set()
        self._turned = anyio.Event()

    async def _finished(self) -> bool:
        """Drain mode: nothing held, under way, waiting, scheduled or leased anywhere."""
        if self._flight.items or self._flight.reserved:
            return False
        depth = await self._store.depth()
        return depth["enqueued"] + depth["retry_scheduled"] + depth["leased"] == 0

    async def _idle(self, mark: int) -> None:
        """Wait for an enqueue: at once for this process's, within the poll for others."""
        self.idle_waits += 1
        with anyio.CancelScope() as scope:
            self._idle_scopes.add(scope)
            try:
                if not self._stopping.is_set():
                    await self._store.wait_ready(mark, self._config.poll_interval_s)
            finally:
                self._idle_scopes.discard(scope)
