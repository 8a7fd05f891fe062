"""What became of one attempt at an item."""

from __future__ import annotations

import enum

__all__ = ["Outcome"]


class Outcome(enum.StrEnum):
    """The outcome of one attempt, as telemetry, progress lines and ``on_settled`` see it.

    A ``StrEnum``: each member equals its value, so it can be logged and compared as text.
    """

    SUCCEEDED = "succeeded"
    """The handler (and every sink) succeeded and the item was acknowledged."""
    RETRY_SCHEDULED = "retry_scheduled"
    """The attempt failed (an error or a timeout) and the item will run again later."""
    DEAD_LETTERED = "dead_lettered"
    """The attempt failed for good (terminal error, timeouts or attempts used up)."""
    STALE = "stale"
    """The lease had been lost: the store refused the outcome (the new owner's counts)."""
    PENDING = "pending"
    """Handled, on its way to the sinks or the settler: not an outcome yet."""
