"""What a pipeline holds in memory: the items leased and not yet settled, the room left
for more, the counters, and the outcomes reported to progress lines and hooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from runtime import telemetry
from runtime.pipeline._outcome import Outcome
from runtime.store import WorkItem

__all__ = ["COUNTERS", "Flight", "SettledHook"]

SettledHook = Callable[[WorkItem, Outcome], Awaitable[None] | None]
"""Called with every item's outcome once the store has it (sync or async)."""

COUNTERS = (
    "leased",
    "succeeded",
    "failed",
    "dead_lettered",
    "timeouts",
    "stale",
    "submitted",
    "rejected",
    "shed",
)


class Flight:
    """The items in flight (leased, not settled) and the events that free room.

    ``room()`` is what the intake may lease now: the capacity less the items held (apart
    from those strict key order parks, bounded on their own by ``max_held``) and the
    leases under way. Every release, returned reservation and stop sets the *freed*
    event the intake waits on, so leasing resumes on a settle, never on a timer.
    """

    def __init__(
        self,
        capacity: int,
        progress: telemetry.Progress,
        on_settled: SettledHook | None,
    ) -> None:
        self.capacity = capacity
        self.items: dict[str, WorkItem] = {}
        self.reserved = 0
        self.held = 0
        self.max_in_flight = 0
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.progress = progress
        self.on_settled = on_settled
        self._freed = anyio.Event()

    def room(self) -> int:
        """Items the intake may lease now."""
        return self.capacity - (len(self.items) - self.held) - self.reserved

    def reserve(self, n: int) -> None:
        """Take room for a lease under way (before its await, so concurrent leases never
        pass the capacity)."""
        self.reserved += n

    def leased(self, n: int, items: list[WorkItem]) -> None:
        """A lease of ``n`` returned ``items``: hold them, return the rest of the room."""
        self.reserved -= n
        held = self.items
        for item in items:
            held[item.id] = item
        self.counts["leased"] += len(items)
        if len(held) > self.max_in_flight:
            self.max_in_flight = len(held)
        if len(items) < n:
            self._freed.set()

    def release(self, item: WorkItem) -> None:
        """``item`` is settled (or let go): its room is free."""
        self.items.pop(item.id, None)
        self._freed.set()

    def wake(self) -> None:
        """Wake whoever waits for room (a stop, or held items released)."""
        self._freed.set()

    async def freed(self) -> None:
        """Wait until room may have been freed since the caller last looked.

        Cancellation: a plain wait; nothing to undo.
        """
        if self._freed.is_set():
            self._freed = anyio.Event()
        await self._freed.wait()

    def observe(
        self, item: WorkItem, outcome: Outcome, latency_s: float | None
    ) -> Awaitable[None] | None:
        """Count an attempt's outcome in the progress figures and tell the hook; return
        what an async hook returned, for the caller to await (no await per item without
        a hook)."""
        self.progress.settled(outcome, latency_s)
        hook = self.on_settled
        return None if hook is None else hook(item, outcome)
