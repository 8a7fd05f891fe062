"""Configuration of a store. Every bound is a number here with a safe default."""

from __future__ import annotations

import enum

import msgspec

from policies import RetentionPolicy, RetryPolicy


class Synchronous(enum.StrEnum):
    """SQLite ``synchronous`` levels Garrison supports.

    ``NORMAL`` in WAL mode may lose the last transactions on power loss but never corrupts;
    ``FULL`` fsyncs every commit, so an acknowledged write survives power loss.
    """

    NORMAL = "NORMAL"
    FULL = "FULL"


class StoreConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of a store.

    Attributes:
        queue: name of the queue this store handle works on (one database may hold many).
        synchronous: durability of commits.
        busy_timeout_s: how long a writer waits for another process's lock.
        max_batch: most operations the writer commits in one transaction (group commit).
        max_pending: most operations waiting for the writer; callers past it wait
            (backpressure instead of an unbounded queue).
        max_payload_bytes: largest payload accepted at intake.
        max_lease_batch: most items one ``lease`` call may take.
        max_lease_s: longest lease a worker may ask for.
        list_limit: most rows a list query returns.
        readers: read connections kept open (reads never wait for the writer).
        cache_mib: SQLite page cache per connection, in MiB (index pages of a busy
            queue stay in memory instead of being re-read).
        retry: retry policy for failures that do not say otherwise.
        retention: retention ages for purges.
        max_page_count: when set, the writer connection's ``PRAGMA max_page_count``: a
            hard cap on the database size in pages (writes past it raise ``StoreFull``).
            Used to bound a database's size, and by the fault tests to simulate a full disk.
    """

    queue: str = "default"
    synchronous: Synchronous = Synchronous.NORMAL
    busy_timeout_s: float = 5.0
    max_batch: int = 512
    max_pending: int = 4096
    max_payload_bytes: int = 1024 * 1024
    max_lease_batch: int = 1000
    max_lease_s: float = 3600.0
    list_limit: int = 1000
    readers: int = 4
    cache_mib: int = 64
    retry: RetryPolicy = RetryPolicy()
    retention: RetentionPolicy = RetentionPolicy()
    max_page_count: int | None = None

    def __post_init__(self) -> None:
        positive = {
            "busy_timeout_s": self.busy_timeout_s,
            "max_batch": self.max_batch,
            "max_pending": self.max_pending,
            "max_payload_bytes": self.max_payload_bytes,
            "max_lease_batch": self.max_lease_batch,
            "max_lease_s": self.max_lease_s,
            "list_limit": self.list_limit,
            "readers": self.readers,
            "cache_mib": self.cache_mib,
        }
        if self.max_page_count is not None:
            positive["max_page_count"] = self.max_page_count
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive")
