"""Errors of the operator toolkit. All derive from :class:`policies.GarrisonError`."""

from __future__ import annotations

from policies import GarrisonError


class BackupRefused(GarrisonError):
    """A backup failed verification (manifest, checksum, size or integrity check).

    Nothing was changed: a restore that raises this has not touched the database.
    """


class DatabaseInUse(GarrisonError):
    """A process has the database open (a running worker, or another tool).

    ``holders`` describes what was found (lease owners, or that a lock is held). Stop the
    workers, then retry.
    """

    def __init__(self, message: str, *, holders: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.holders = holders
