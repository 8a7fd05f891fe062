"""SQLite write primitives of upkeep: purges, runtime events, effects and checkpoints.

Like ``_sqlite_tx``, each runs on the writer thread inside the batch's transaction.
"""

from __future__ import annotations

import sqlite3

from runtime.store._backend import PurgeTarget
from runtime.store._sqlite_tx import audit

# Which rows each purge target selects: (item states, the dead-letter time compared).
_DEAD_LETTER_TARGETS = {
    PurgeTarget.ARCHIVED: ("('archived')", "d.archived_at"),
    PurgeTarget.LIVE_DEAD_LETTERS: ("('dead_lettered')", "d.dead_at"),
    PurgeTarget.DEAD_LETTERS: (
        "('archived', 'dead_lettered')",
        "coalesce(d.archived_at, d.dead_at)",
    ),
}


def purge(
    conn: sqlite3.Connection, now: float, queue: str, target: PurgeTarget, before: float, limit: int
) -> int:
    """Delete up to ``limit`` rows of ``target`` older than ``before``; audit the purge.

    Audit rows go in one statement (``limit`` does not apply); a dead letter goes with
    its item (the ``dead_letters`` row cascades, replays keep their item and lose the link).
    """
    if target is PurgeTarget.AUDIT:
        count = conn.execute(
            "DELETE FROM audit WHERE queue = ? AND at < ?", (queue, before)
        ).rowcount
        if count:
            audit(conn, now, "audit_purged", queue, detail={"count": count})
        return count
    if target is PurgeTarget.SUCCEEDED:
        kind = "succeeded_purged"
        sql = (
            "SELECT id FROM items WHERE queue = ? AND state = 'succeeded' AND finished_at < ? "
            "LIMIT ?"
        )
    else:
        kind = "dead_letters_purged"
        states, at = _DEAD_LETTER_TARGETS[target]
        sql = (
            "SELECT d.item_id FROM dead_letters d JOIN items i ON i.id = d.item_id "
            f"WHERE d.queue = ? AND i.state IN {states} AND {at} < ? LIMIT ?"
        )
    ids = [r[0] for r in conn.execute(sql, (queue, before, limit))]
    if not ids:
        return 0
    conn.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in ids])
    audit(conn, now, kind, queue, detail={"count": len(ids), "first_ids": ids[:20]})
    return len(ids)


def record_event(
    conn: sqlite3.Connection, now: float, queue: str, kind: str, detail: dict[str, object]
) -> None:
    """Write a runtime event (pressure transition, restart) to the audit trail."""
    audit(conn, now, kind, queue, detail=detail)


def record_contention(conn: sqlite3.Connection, now: float, queue: str, waits: int) -> None:
    """Note that a write waited for another process's lock (counted as lease contention)."""
    audit(conn, now, "contention", queue, detail={"waits": waits})


def record_effect(conn: sqlite3.Connection, now: float, effect_key: str, item_id: str) -> bool:
    """Record a delivered side effect; False if it was already recorded."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO effects (effect_key, item_id, recorded_at) VALUES (?, ?, ?)",
        (effect_key, item_id, now),
    )
    return cur.rowcount == 1


def save_checkpoint(conn: sqlite3.Connection, now: float, name: str, state: bytes) -> None:
    """Keep the latest state snapshot of a named actor."""
    conn.execute(
        "INSERT INTO checkpoints (name, state, saved_at) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at",
        (name, state, now),
    )
