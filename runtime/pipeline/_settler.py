"""Settling: the settler acknowledges successes in batches, failures go through the
store's retry policy, and the lease keeper extends every lease held in one write.

These are the only places of the runtime that ack, fail or heartbeat an item.
"""

from __future__ import annotations

import logging
import time

import anyio
from anyio.abc import TaskStatus

from runtime import telemetry
from runtime._errors import StaleLease
from runtime.actors import Actor, ActorContext, Behaviour
from runtime.pipeline._config import PipelineConfig
from runtime.pipeline._flight import Flight
from runtime.pipeline._handler import failure_from
from runtime.pipeline._outbound import Handled
from runtime.pipeline._outcome import Outcome
from runtime.pipeline._sinks import SinkFailed
from runtime.store import Store, WorkItem
from supervisors import ChildSpec, Restart

__all__ = ["Entry", "Settler"]

Entry = tuple[Handled, list[str]]
"""A successful item and the keys of the effects its sinks delivered."""

log = logging.getLogger("garrison.pipeline")


class Settler:
    """Acknowledges handled items in batches and records failures.

    The settler is an actor (:class:`runtime.actors.Actor`, id ``settler``): workers and
    outbound actors cast successful items into its bounded mailbox (the pipeline's
    capacity: never more messages than items in flight), and it acknowledges them with
    their effects in one ``ack_many`` transaction per batch: whatever arrived while the
    last batch was being written, up to ``ack_batch``.

    A message is a list of successes: a worker handling quick items back to back sends
    them together (see :meth:`send`), because every message costs the actor a trip
    through the scheduler (measured: one per item was ~20 % of a no-op pipeline's CPU).
    """

    def __init__(self, store: Store, config: PipelineConfig, flight: Flight) -> None:
        self._store = store
        self._config = config
        self._flight = flight
        # Cast but not yet taken by the behaviour: when it falls to zero, the batch holds
        # everything there is and is written.
        self._pending = 0
        # The store has its own timeouts; a slow commit is not a hung settler.
        self.actor: Actor[list[Entry], None] = Actor(
            "settler",
            lambda: _Batches(self),
            capacity=flight.capacity,
            handler_timeout=None,
        )

    def child_spec(self) -> ChildSpec:
        """The settler's spec under the pipeline's root supervisor."""
        return self.actor.child_spec("settler", restart=Restart.PERMANENT, shutdown_timeout=1.0)

    async def delivered(self, handled: Handled, effects: list[str]) -> None:
        """Queue one successful item for its batched ack (waits only if the settler lags)."""
        await self.send([(handled, effects)])

    async def send(self, entries: list[Entry]) -> None:
        """Queue successful items (one message) for their batched ack."""
        self._pending += 1
        try:
            # No reschedule per message while the settler keeps up; the sender yields anyway.
            self.actor.cast_nowait(entries)
        except anyio.WouldBlock:
            try:
                await self.actor.cast(entries)
            except BaseException:
                self._pending -= 1
                raise

    def send_nowait(self, entries: list[Entry]) -> bool:
        """:meth:`send` without waiting; False (nothing queued) if the mailbox is full or
        closed."""
        try:
            self.actor.cast_nowait(entries)
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            return False
        self._pending += 1
        return True

    async def undelivered(self, handled: Handled, error: SinkFailed) -> Outcome:
        """A sink failed every try: the item's attempt fails."""
        item = handled.item
        self._flight.counts["timeouts"] += error.timeout
        try:
            outcome = await self.fail(item, error, timeout=error.timeout)
            telemetry.settled(
                item,
                outcome,
                duration_s=time.perf_counter() - handled.began,
                queue_latency_s=handled.queue_latency_s,
                error=error,
            )
            told = self._flight.observe(item, outcome, handled.queue_latency_s)
            if told is not None:
                await told
        finally:
            self._flight.release(item)
        return outcome

    async def fail(self, item: WorkItem, exc: BaseException, *, timeout: bool) -> Outcome:
        """Record a failed attempt (the store's retry policy decides what follows)."""
        counts = self._flight.counts
        counts["failed"] += 1
        try:
            result = await self._store.fail(
                item.id, item.lease_token or "", failure_from(exc, timeout=timeout)
            )
        except StaleLease:
            counts["stale"] += 1
            return Outcome.STALE
        if result.reason is not None:
            counts["dead_lettered"] += 1
            return Outcome.DEAD_LETTERED
        return Outcome(result.state.value)

    async def _write(self, batch: list[Entry]) -> None:
        """Acknowledge ``batch`` in one transaction and report each item's outcome."""
        flight = self._flight
        counts = flight.counts
        try:
            refused = await self._store.ack_many(
                [(h.item.id, h.item.lease_token or "") for h, _ in batch],
                effects={h.item.id: keys for h, keys in batch if keys},
                contexts=[h.item.trace_context for h, _ in batch],
            )
        except BaseException:
            # Not acknowledged: let go of them, their leases expire and they run again.
            for h, _ in batch:
                flight.release(h.item)
            raise
        now = time.perf_counter()
        for (h, _), error in zip(batch, refused, strict=True):
            outcome = Outcome.SUCCEEDED if error is None else Outcome.STALE
            counts[outcome] += 1
            telemetry.settled(
                h.item, outcome, duration_s=now - h.began, queue_latency_s=h.queue_latency_s
            )
            flight.release(h.item)
            told = flight.observe(h.item, outcome, h.queue_latency_s)
            if told is not None:
                await told

    async def keep_leases(self, *, task_status: TaskStatus[None]) -> None:
        """The lease keeper: every third of ``lease_s``, extend every lease held, all in
        one ``heartbeat_many`` transaction."""
        task_status.started()
        lease_s = self._config.lease_s
        period = lease_s / 3
        items = self._flight.items
        while True:
            await anyio.sleep(period)
            held = [(item.id, item.lease_token or "") for item in items.values()]
            if not held:
                continue
            refused = await self._store.heartbeat_many(held, lease_s)
            for (item_id, _), error in zip(held, refused, strict=True):
                # Refused: settled meanwhile (fine), or lost; its outcome will be refused.
                if error is not None and item_id in items:
                    log.warning("heartbeat refused: lease lost", extra={"item_id": item_id})


class _Batches(Behaviour[list[Entry], None]):
    """The settler's behaviour: gather casts, write a batch when none is left to gather
    (or ``ack_batch`` is reached). A fresh one per incarnation: a batch that failed to be
    written was let go of (see :meth:`Settler._write`)."""

    __slots__ = ("_batch", "_limit", "_settler")

    def __init__(self, settler: Settler) -> None:
        self._settler = settler
        self._limit = settler._config.ack_batch
        self._batch: list[Entry] = []

    async def handle(self, ctx: ActorContext, message: list[Entry]) -> None:
        settler = self._settler
        settler._pending -= 1
        batch = self._batch
        batch += message
        limit = self._limit
        while len(batch) >= limit:
            self._batch = batch[limit:]
            await settler._write(batch[:limit])
            batch = self._batch
        if batch and settler._pending == 0:
            self._batch = []
            await settler._write(batch)
