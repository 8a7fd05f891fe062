"""Handler timeouts for a worker without a cancel scope per item.

Entering and leaving a deadline scope for every item was a quarter of a pipeline worker's
own time (Trio keeps each deadline in a heap). Instead a worker runs its items inside a
long-lived *segment* scope, and one watchdog task per worker wakes when the handler running
now would reach its deadline: if that handler is still running, the watchdog cancels the
segment, the worker turns the cancellation into a ``timeout`` failure of that item, and
opens a new segment. Timeouts stay exact (the watchdog wakes at the deadline itself).
"""

from __future__ import annotations

from collections.abc import Callable

import anyio


class HandlerWatch:
    """The state a worker shares with its watchdog: which handler runs, since when."""

    __slots__ = ("_clock", "_limit", "_next_segment", "_scope", "_started", "tripped")

    def __init__(self, limit: float, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock
        self._started: float | None = None
        self._scope: anyio.CancelScope | None = None
        self._next_segment = anyio.Event()
        #: The watchdog cancelled the current segment because a handler overran.
        self.tripped = False

    def segment(self) -> anyio.CancelScope:
        """A new segment scope, to enter around the worker's loop."""
        self._scope = anyio.CancelScope()
        self.tripped = False
        self._started = None
        previous, self._next_segment = self._next_segment, anyio.Event()
        previous.set()
        return self._scope

    def begin(self) -> None:
        """A handler starts now."""
        self._started = self._clock()

    def end(self) -> None:
        """The handler returned or raised (call before any further await)."""
        self._started = None

    async def run(self) -> None:
        """The watchdog: cancel the segment when a handler reaches its deadline."""
        limit = self._limit
        while True:
            now = self._clock()
            started, scope = self._started, self._scope
            if started is not None and now >= started + limit and scope is not None:
                self.tripped = True
                scope.cancel()
                await self._next_segment.wait()
                continue
            # A handler starting after now ends its time no earlier than now + limit.
            await anyio.sleep_until(now + limit if started is None else started + limit)
