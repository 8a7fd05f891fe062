"""The intake: leases items when there is room for them and routes them to the workers.

It never polls for room: it waits on the *freed* event settles set. It polls the store
only while idle, for other processes' enqueues, every ``poll_interval_s``; an enqueue in
this process wakes it at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial

import anyio

from policies import PressureAction
from runtime.actors import Actor, ActorContext, Behaviour
from runtime.pipeline._config import PipelineConfig
from runtime.pipeline._flight import Flight
from runtime.pipeline._pressure import PressureGauge
from runtime.pipeline._workers import Workers
from runtime.store import Store
from supervisors import ChildSpec, Restart

__all__ = ["Intake"]


class Intake:
    """Leasing for one pipeline: ``lease_concurrency`` intake actors sharing its room."""

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
        self._topics = config.topics or None
        # Leasing a handful at a time costs a writer round trip per handful: wait until a
        # worthwhile batch fits.
        self._worthwhile = max(1, min(config.lease_batch, flight.capacity) // 2)
        # Several intake actors, so several leases are in flight at once: while one waits
        # for the writer, the items of the last are being handled. Each drives itself with
        # a message per lease; the store and the settles wake it, never a timer.
        self.actors: list[Actor[object, None]] = [
            Actor(f"intake-{i}", partial(_Leasing, self, i), capacity=1, handler_timeout=None)
            for i in range(config.lease_concurrency)
        ]
        #: Stop the pipeline once nothing is left (``config.drain``, ``--drain``).
        self.drain = config.drain

    def wake(self) -> None:
        """End idle waits now (a stop)."""
        for scope in self._idle_scopes:
            scope.cancel()
        self._flight.wake()

    def child_specs(self) -> list[ChildSpec]:
        """The intake actors' specs under the pipeline's root supervisor (transient: they
        end normally once the pipeline stops taking work)."""
        return [
            actor.child_spec(restart=Restart.TRANSIENT, shutdown_timeout=1.0)
            for actor in self.actors
        ]

    def close(self) -> None:
        """Stop taking work: wake the intake actors and close their mailboxes."""
        for actor in self.actors:
            actor.close()
        self.wake()

    def _kick(self, index: int) -> None:
        """Queue actor ``index``'s next lease (at most one is ever queued)."""
        with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError):
            self.actors[index].cast_nowait(_LEASE)

    async def lease_once(self) -> bool:
        """One step of an intake actor: wait for room (a settle) or for ready items (an
        enqueue), lease a batch and route it; False once the pipeline stops."""
        cfg = self._config
        flight = self._flight
        store = self._store
        if self._stopping.is_set():
            return False
        room = flight.room()
        if room < 1:
            await flight.freed()
            return True
        if room < self._worthwhile:
            # Some room, not a worthwhile batch: wait for more to free up, but not past a
            # poll interval, so a few slots are not left idle behind handlers that all
            # run long.
            with anyio.move_on_after(cfg.poll_interval_s) as waited:
                await flight.freed()
            if not waited.cancelled_caught:
                return True
        if PressureAction.THROTTLE in self._pressure.actions:
            await self._pressure.throttle()
        n = min(flight.room(), cfg.lease_batch)
        if n < 1:
            return True
        flight.reserve(n)
        mark = store.ready_mark()
        # Leases run in the order they are called (the store serialises them), so an
        # earlier ticket holds a key's earlier items: route in ticket order, or a lease
        # that waits for inbox room would let a later one overtake it.
        ticket = self._tickets
        self._tickets += 1
        try:
            items = await store.lease(self._owner, n, cfg.lease_s, self._topics)
        except BaseException:
            flight.leased(n, [])
            self._turn_done(ticket)
            raise
        flight.leased(n, items)
        try:
            while self._turn != ticket:
                await self._turned.wait()
            route = self._workers.route
            for item in items:
                await route(item)
        finally:
            self._turn_done(ticket)
        if items:
            return True
        if self.drain and await self._finished():
            self._drained()
            return False
        await self._idle(mark)
        return True

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


_LEASE = object()


class _Leasing(Behaviour[object, None]):
    """An intake actor's behaviour: each message is one lease step, then the next."""

    __slots__ = ("_index", "_intake")

    def __init__(self, intake: Intake, index: int) -> None:
        self._intake = intake
        self._index = index

    async def started(self, ctx: ActorContext) -> None:
        self._intake._kick(self._index)

    async def handle(self, ctx: ActorContext, message: object) -> None:
        intake = self._intake
        if await intake.lease_once():
            intake._kick(self._index)
        else:
            intake.actors[self._index].close()
