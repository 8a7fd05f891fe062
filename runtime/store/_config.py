"""Configuration of a store. Every bound is a number here with a safe default."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from policies import RetentionPolicy, RetryPolicy, check_bounds

Positive = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]


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

    Raises:
        ValidationFailed: a field is outside its declared bounds (``field`` names it).
    """

    queue: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = "default"
    synchronous: Synchronous = Synchronous.NORMAL
    busy_timeout_s: Seconds = 5.0
    max_batch: Positive = 512
    max_pending: Positive = 4096
    max_payload_bytes: Positive = 1024 * 1024
    # A lease of n items binds n parameters padded to a power of two, and SQLite allows
    # 32,766 per statement.
    max_lease_batch: Annotated[int, msgspec.Meta(ge=1, le=16_384)] = 1000
    max_lease_s: Seconds = 3600.0
    list_limit: Positive = 1000
    readers: Positive = 4
    cache_mib: Positive = 64
    retry: RetryPolicy = RetryPolicy()
    retention: RetentionPolicy = RetentionPolicy()
    max_page_count: Positive | None = None

    def __post_init__(self) -> None:
        check_bounds(self)
