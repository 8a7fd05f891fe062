"""``maintenance``: the routine upkeep of a database, safe while workers run.

In order: refuse a corrupt database (``quick_check``); open it as a store for each queue
with expired leases (which migrates an old schema and reclaims those leases); recreate
missing indexes; repair rows whose foreign keys point at deleted items (as the schema's
``ON DELETE`` actions would have); ``ANALYZE``; ``PRAGMA optimize``; optionally
``VACUUM``; a ``TRUNCATE`` checkpoint of the WAL. ``VACUUM`` blocks writers while it runs
and needs free disk space about the size of the database.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from runtime._errors import NotADatabase
from runtime.ops._connect import connection, queues
from runtime.ops._stats import DbStats, db_stats
from runtime.store import SQLiteStore, StoreConfig
from runtime.store.sqlite import MIGRATIONS

_INDEX = re.compile(r"CREATE\s+(UNIQUE\s+)?INDEX\s+(\w+)\s+(ON\s[^;]+)", re.IGNORECASE)


def index_definitions() -> dict[str, str]:
    """``CREATE INDEX IF NOT EXISTS`` statements of every index the schema defines."""
    found: dict[str, str] = {}
    for unique, name, rest in _INDEX.findall(";".join(MIGRATIONS)):
        found[name] = f"CREATE {unique}INDEX IF NOT EXISTS {name} {rest.strip()}"
    return found


class MaintenanceResult(msgspec.Struct, frozen=True):
    """What maintenance did, with the database's figures before and after."""

    path: str
    reclaimed_leases: dict[str, int]
    indexes_created: list[str]
    foreign_keys_repaired: dict[str, int]
    analyzed: bool
    optimized: bool
    vacuumed: bool
    wal_frames_before: int
    wal_frames_after: int
    before: DbStats
    after: DbStats


def maintain(
    path: Path,
    *,
    vacuum: bool = False,
    busy_timeout_s: float = 5.0,
    clock: Callable[[], float] = time.time,
) -> MaintenanceResult:
    """Run the upkeep described in this module's docstring.

    Raises:
        StoreUnavailable: no database at ``path``.
        NotADatabase: not a Garrison database, or corrupt (restore it instead).
        StoreBusy: another writer held the lock past ``busy_timeout_s``.
        StoreFull: no room for the work (``VACUUM`` in particular).
    """
    try:
        before = db_stats(path)
        with connection(path, busy_timeout_s=busy_timeout_s) as conn:
            check = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)")]
            if check != ["ok"]:
                raise NotADatabase(f"quick_check: {check[0]}")
            expired = _expired(conn, clock()) if "items" in before.rows else {}
    except NotADatabase as exc:
        raise NotADatabase(
            f"{path} is corrupt ({exc}); maintenance cannot fix it — restore from a backup "
            "(runbooks/backup-restore.md)"
        ) from exc
    reclaimed: dict[str, int] = {}
    for queue in sorted(expired) or ["default"]:
        config = StoreConfig(queue=queue, busy_timeout_s=busy_timeout_s)
        SQLiteStore.open(path, config, create=False, clock=clock).close()  # reclaims on open
    if expired:
        with connection(path) as conn:
            left = _expired(conn, clock())
        reclaimed = {q: n - left.get(q, 0) for q, n in expired.items()}
    with connection(path, write=True, busy_timeout_s=busy_timeout_s) as conn:
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        created = [name for name in index_definitions() if name not in present]
        for name in created:
            conn.execute(index_definitions()[name])
        repaired = _repair_foreign_keys(conn, clock())
        conn.execute("ANALYZE")
        conn.execute("PRAGMA optimize")
        if vacuum:
            conn.execute("VACUUM")
        _, frames_before, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        _, frames_after, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return MaintenanceResult(
        path=str(path),
        reclaimed_leases=reclaimed,
        indexes_created=created,
        foreign_keys_repaired=repaired,
        analyzed=True,
        optimized=True,
        vacuumed=vacuum,
        wal_frames_before=max(int(frames_before), 0),
        wal_frames_after=max(int(frames_after), 0),
        before=before,
        after=db_stats(path),
    )


def _expired(conn: sqlite3.Connection, now: float) -> dict[str, int]:
    return {
        str(q): int(n)
        for q, n in conn.execute(
            "SELECT queue, count(*) FROM items WHERE state = 'leased' AND lease_expires_at < ? "
            "GROUP BY queue",
            (now,),
        )
    }


def _repair_foreign_keys(conn: sqlite3.Connection, now: float) -> dict[str, int]:
    """Apply the schema's ``ON DELETE`` actions to rows that missed them; audited."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        repaired = {"dead_letters_deleted": 0, "replay_links_cleared": 0}
        for table, rowid, _parent, _fk in broken:
            if table == "dead_letters":
                conn.execute("DELETE FROM dead_letters WHERE rowid = ?", (rowid,))
                repaired["dead_letters_deleted"] += 1
            elif table == "items":
                conn.execute("UPDATE items SET replay_of = NULL WHERE rowid = ?", (rowid,))
                repaired["replay_links_cleared"] += 1
        if broken:
            for queue in queues(conn):
                conn.execute(
                    "INSERT INTO audit (at, kind, queue, detail) VALUES (?, ?, ?, ?)",
                    (now, "foreign_keys_repaired", queue, json.dumps(repaired)),
                )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return {k: v for k, v in repaired.items() if v}
