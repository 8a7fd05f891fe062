"""The store's public surface, pinned: what other packages may import from it."""

from __future__ import annotations

import ast
from pathlib import Path

import runtime.store
import runtime.store.sqlite

STORE = Path(runtime.store.__file__).parent


def test_the_store_exports_are_pinned() -> None:
    assert sorted(runtime.store.__all__) == sorted(
        [
            "MEMORY_URL",
            "SCHEMA_VERSION",
            "AuditEvent",
            "Consumer",
            "DeadLetter",
            "DeadLetterAdmin",
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
    )
    for name in runtime.store.__all__:
        assert hasattr(runtime.store, name), name


def test_the_sqlite_exports_are_pinned() -> None:
    assert sorted(runtime.store.sqlite.__all__) == [
        "EXPECTED_INDEXES",
        "EXPECTED_TABLES",
        "MIGRATIONS",
        "SCHEMA_VERSION",
        "SQLITE_HEADER",
        "SQLiteBackend",
        "check_path",
        "exclusive_use",
        "lock_path",
        "queue_metrics",
        "shared_use",
        "translate",
    ]
    for name in runtime.store.sqlite.__all__:
        assert hasattr(runtime.store.sqlite, name), name


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_rules_and_the_front_end_name_no_backend() -> None:
    # The rules are pure (no I/O, no SQL); the front end reaches a backend only through
    # the protocol, so SQLite specifics cannot leak into policy.
    rules = _imports(STORE / "_rules.py")
    assert not {m for m in rules if m in {"sqlite3", "os", "time", "anyio", "trio"}}
    for front in ("_rules.py", "_front.py", "_front_base.py", "_backend.py", "_ready.py"):
        modules = _imports(STORE / front)
        assert not [m for m in modules if "sqlite" in m or "memory" in m], front


def test_every_store_module_is_under_500_lines() -> None:
    for path in sorted(STORE.glob("*.py")):
        assert len(path.read_text().splitlines()) < 500, path.name
