"""The durable queue: work item envelopes, their states, a front end over backends.

:class:`QueueStore` is the front end (validation, bounds, telemetry, retry decisions,
the ready mark, purges) over a backend of transactional primitives: SQLite
(:class:`SQLiteStore`) or in memory (:class:`MemoryStore`, ``open_store("memory://")``).
SQLite specifics other packages need (schema, paths, error translation, the use lock)
are in :mod:`runtime.store.sqlite`.
"""

from runtime.store._config import StoreConfig, Synchronous
from runtime.store._envelope import (
    DeadLetter,
    DeadReason,
    Failure,
    ItemState,
    NewItem,
    WorkItem,
    payload_digest,
    validate_new_item,
)
from runtime.store._front import QueueStore
from runtime.store._memory_db import MemoryDatabase
from runtime.store._memory_store import MemoryStatistics, MemoryStore
from runtime.store._open import MEMORY_URL, open_store
from runtime.store._protocol import Consumer, DeadLetterAdmin, Ledger, Producer, Store
from runtime.store._records import (
    AuditEvent,
    EnqueueResult,
    FailOutcome,
    PurgeResult,
    QueueMetrics,
)
from runtime.store._rules import replay_refusal
from runtime.store._schema import SCHEMA_VERSION
from runtime.store._sqlite_store import SQLiteStore, StoreStatistics
from runtime.store._writer import WriterStatistics

__all__ = [
    "MEMORY_URL",
    "SCHEMA_VERSION",
    "AuditEvent",
    "Consumer",
    "DeadLetterAdmin",
    "DeadLetter",
    "DeadReason",
    "EnqueueResult",
    "FailOutcome",
    "Failure",
    "ItemState",
    "Ledger",
    "MemoryDatabase",
    "MemoryStatistics",
    "MemoryStore",
    "NewItem",
    "Producer",
    "PurgeResult",
    "QueueMetrics",
    "QueueStore",
    "SQLiteStore",
    "Store",
    "StoreConfig",
    "StoreStatistics",
    "Synchronous",
    "WorkItem",
    "WriterStatistics",
    "open_store",
    "payload_digest",
    "replay_refusal",
    "validate_new_item",
]
