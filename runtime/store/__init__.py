"""The durable queue: work item envelopes, their states, and the SQLite backend."""

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
from runtime.store._protocol import Store
from runtime.store._queries import AuditEvent, PurgeResult, QueueMetrics
from runtime.store._schema import SCHEMA_VERSION
from runtime.store._sqlite import SQLiteStore, StoreStatistics, open_store
from runtime.store._transitions import EnqueueResult, FailOutcome
from runtime.store._writer import WriterStatistics

__all__ = [
    "SCHEMA_VERSION",
    "AuditEvent",
    "DeadLetter",
    "DeadReason",
    "EnqueueResult",
    "FailOutcome",
    "Failure",
    "ItemState",
    "NewItem",
    "PurgeResult",
    "QueueMetrics",
    "SQLiteStore",
    "Store",
    "StoreConfig",
    "StoreStatistics",
    "Synchronous",
    "WorkItem",
    "WriterStatistics",
    "open_store",
    "payload_digest",
    "validate_new_item",
]
