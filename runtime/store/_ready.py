"""The ready mark: an in-process wake-up for consumers when items become leasable."""

from __future__ import annotations

import anyio
import anyio.lowlevel

from runtime._errors import ValidationFailed


class ReadyMark:
    """A counter that moves when items become ready, and an event to wait for a move.

    A consumer takes :meth:`mark` *before* a lease that comes back empty and then waits
    with :meth:`wait`: a move between the two is not missed. Waiting is on one shared
    event (no polling, any number of waiters); the last waiter to leave drops it, so no
    event outlives the loop it was made in.
    """

    def __init__(self) -> None:
        self._mark = 0
        self._event: anyio.Event | None = None
        self._waiters = 0

    def mark(self) -> int:
        """The current value."""
        return self._mark

    def move(self) -> None:
        """Items became ready: move the mark and wake every waiter."""
        self._mark += 1
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def wait(self, mark: int, timeout_s: float) -> None:
        """Return once the value differs from ``mark``, or after ``timeout_s`` seconds.

        Raises:
            ValidationFailed: ``timeout_s`` is negative or not a number.
        """
        if not timeout_s >= 0:
            raise ValidationFailed("timeout_s must be zero or more", field="timeout_s")
        if self._mark != mark:
            await anyio.lowlevel.checkpoint()
            return
        event = self._event
        if event is None:
            event = self._event = anyio.Event()
        self._waiters += 1
        try:
            with anyio.move_on_after(timeout_s):
                await event.wait()
        finally:
            self._waiters -= 1
            if not self._waiters and self._event is event:
                self._event = None
