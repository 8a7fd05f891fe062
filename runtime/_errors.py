"""Errors a caller of the runtime can act on. All derive from :class:`GarrisonError`."""

from __future__ import annotations

# Re-exported: both live at the bottom of the import graph so every package shares them.
from policies import GarrisonError as GarrisonError
from policies import ValidationFailed as ValidationFailed


class PayloadTooLarge(ValidationFailed):
    """A payload is larger than the configured limit."""


class ChecksumMismatch(ValidationFailed):
    """A supplied SHA-256 does not match the payload."""


class ItemNotFound(GarrisonError, LookupError):
    """No work item or dead letter has that id."""


class StaleLease(GarrisonError):
    """The lease token presented is not the item's current one.

    The lease expired and the item was reclaimed (and maybe leased again); the caller's
    outcome was refused so that it cannot overwrite the new owner's.
    """


class InvalidTransition(GarrisonError):
    """The operation does not apply to the item's current state."""


class ReplayRefused(GarrisonError):
    """A dead letter was already replayed; replay again only with ``force``."""


class StoreUnavailable(GarrisonError):
    """The store cannot be used: not a database, corrupt, locked too long, or closed."""


class StoreBusy(StoreUnavailable):
    """Another writer held the database lock past the busy timeout."""


class StoreFull(StoreUnavailable):
    """The database or disk is full; nothing from the failed operation was written."""


class NotADatabase(StoreUnavailable):
    """The path exists but is not a Garrison SQLite database (or it is corrupt)."""


class SchemaTooNew(StoreUnavailable):
    """The database was written by a newer Garrison than this one."""


class PressureRejected(GarrisonError):
    """A producer was refused because a channel is under pressure; retry later.

    ``channel``, ``level`` and ``depth`` say where and how loaded it was; nothing was
    written.
    """

    def __init__(self, message: str, *, channel: str, level: str, depth: int) -> None:
        super().__init__(message)
        self.channel = channel
        self.level = level
        self.depth = depth
