"""Read-only queries: items, dead letters, audit events and queue metrics.

They run on read connections, which in WAL mode see the last committed state and never
wait for the writer.
"""

from __future__ import annotations

import sqlite3

from policies import RetentionCutoffs
from runtime.store import _rules as rules
from runtime.store._backend import DeadLetterQuery, EventQuery
from runtime.store._envelope import DeadLetter, ItemState, WorkItem
from runtime.store._records import AuditEvent, PurgeResult, QueueMetrics
from runtime.store._rows import (
    DEAD_LETTER_COLUMNS,
    ITEM_COLUMNS,
    dead_letter_from_row,
    item_from_row,
)


def select_item(conn: sqlite3.Connection, item_id: str) -> WorkItem | None:
    """The row of ``item_id``, or None."""
    row = conn.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
    return None if row is None else item_from_row(row)


def get_item(conn: sqlite3.Connection, item_id: str) -> WorkItem:
    """The item with ``item_id``. Raises ItemNotFound."""
    item = select_item(conn, item_id)
    if item is None:
        raise rules.missing(item_id)
    return item


def list_items(
    conn: sqlite3.Connection, queue: str, state: ItemState | None, limit: int
) -> list[WorkItem]:
    """Items of a queue in sequence order, optionally of one state."""
    if state is None:
        rows = conn.execute(
            f"SELECT {ITEM_COLUMNS} FROM items WHERE queue = ? ORDER BY seq LIMIT ?",
            (queue, limit),
        )
    else:
        rows = conn.execute(
            f"SELECT {ITEM_COLUMNS} FROM items WHERE queue = ? AND state = ? ORDER BY seq LIMIT ?",
            (queue, state.value, limit),
        )
    return [item_from_row(r) for r in rows]


def get_dead_letter(conn: sqlite3.Connection, item_id: str) -> DeadLetter:
    """The dead letter of item ``item_id``."""
    row = conn.execute(
        f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters d JOIN items i ON i.id = d.item_id "
        "WHERE d.item_id = ?",
        (item_id,),
    ).fetchone()
    if row is None:
        raise rules.missing(item_id, dead_letter=True)
    return dead_letter_from_row(row)


def list_dead_letters(
    conn: sqlite3.Connection, queue: str, query: DeadLetterQuery
) -> list[DeadLetter]:
    """Dead letters, oldest first, filtered by topic, reason and time."""
    clauses = ["d.queue = ?"]
    params: list[object] = [queue]
    if not query.include_archived:
        clauses.append("i.state = 'dead_lettered'")
    for clause, value in (
        ("i.topic = ?", query.topic),
        ("d.reason = ?", None if query.reason is None else query.reason.value),
        ("d.dead_at >= ?", query.since),
        ("d.dead_at < ?", query.until),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    params.append(query.limit)
    rows = conn.execute(
        f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters d JOIN items i ON i.id = d.item_id "
        f"WHERE {' AND '.join(clauses)} ORDER BY d.dead_at, i.seq LIMIT ?",
        params,
    )
    return [dead_letter_from_row(r) for r in rows]


def list_events(conn: sqlite3.Connection, queue: str, query: EventQuery) -> list[AuditEvent]:
    """Audit rows of one queue, oldest first, filtered."""
    clauses: list[str] = ["queue = ?"]
    params: list[object] = [queue]
    for clause, value in (
        ("item_id = ?", query.item_id),
        ("topic = ?", query.topic),
        ("kind = ?", query.kind),
        ("at >= ?", query.since),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    params.append(query.limit)
    rows = conn.execute(
        "SELECT id, at, kind, queue, item_id, topic, from_state, to_state, attempt, "
        f"max_attempts, error, detail FROM audit WHERE {' AND '.join(clauses)} "
        "ORDER BY id LIMIT ?",
        params,
    )
    return [AuditEvent(*r) for r in rows]


def active_depth(conn: sqlite3.Connection, queue: str) -> dict[str, int]:
    """Items not yet finished, by state. Index range scans over unfinished rows only, so
    its cost does not grow with history (what pressure sampling and drains poll)."""
    depth = dict.fromkeys(("enqueued", "retry_scheduled", "leased"), 0)
    for state, count in conn.execute(
        "SELECT state, count(*) FROM items INDEXED BY items_state WHERE queue = ? "
        "AND state IN ('enqueued', 'retry_scheduled', 'leased') GROUP BY state",
        (queue,),
    ):
        depth[state] = count
    return depth


def queue_metrics(conn: sqlite3.Connection, queue: str, now: float, since_s: float) -> QueueMetrics:
    """Depth by state and windowed rates for a queue."""
    start = now - since_s
    depth = {state.value: 0 for state in ItemState}
    for state, count in conn.execute(
        "SELECT state, count(*) FROM items WHERE queue = ? GROUP BY state", (queue,)
    ):
        depth[state] = count
    counts = {
        kind: (count, avg)
        for kind, count, avg in conn.execute(
            "SELECT kind, count(*), avg(wait_s) FROM audit WHERE at >= ? AND at <= ? "
            "AND queue = ? AND kind IN ('enqueued', 'leased', 'succeeded', 'retry_scheduled', "
            "'dead_lettered', 'lease_expired') GROUP BY kind",
            (start, now, queue),
        )
    }
    contention = conn.execute(
        "SELECT coalesce(sum(json_extract(detail, '$.waits')), 0) FROM audit "
        "WHERE kind = 'contention' AND at >= ? AND at <= ? AND queue = ?",
        (start, now, queue),
    ).fetchone()[0]
    last_success = {
        topic: at
        for topic, at in conn.execute(
            "SELECT topic, max(finished_at) FROM items WHERE queue = ? AND state = 'succeeded' "
            "GROUP BY topic",
            (queue,),
        )
    }
    by_reason = {
        reason: count
        for reason, count in conn.execute(
            "SELECT reason, count(*) FROM dead_letters WHERE queue = ? AND dead_at >= ? "
            "AND dead_at <= ? GROUP BY reason",
            (queue, start, now),
        )
    }
    succeeded = counts.get("succeeded", (0, None))[0]
    return QueueMetrics(
        queue=queue,
        now=now,
        since_s=since_s,
        depth=depth,
        enqueued=counts.get("enqueued", (0, None))[0],
        succeeded=succeeded,
        throughput_per_min=succeeded * 60.0 / since_s if since_s > 0 else 0.0,
        avg_queue_latency_s=counts.get("leased", (0, None))[1],
        lease_contention=int(contention),
        retries=counts.get("retry_scheduled", (0, None))[0],
        dead_letters=counts.get("dead_lettered", (0, None))[0],
        lease_expirations=counts.get("lease_expired", (0, None))[0],
        last_success=last_success,
        dead_letters_by_reason=by_reason,
    )


def retention_counts(conn: sqlite3.Connection, queue: str, cut: RetentionCutoffs) -> PurgeResult:
    """What a retention purge with these cut-offs would remove (a dry run)."""

    def count(sql: str, *params: object) -> int:
        return int(conn.execute(sql, params).fetchone()[0])

    succeeded = dead = audit = 0
    if cut.succeeded_before is not None:
        succeeded = count(
            "SELECT count(*) FROM items WHERE queue = ? AND state = 'succeeded' "
            "AND finished_at < ?",
            queue,
            cut.succeeded_before,
        )
    if cut.archived_before is not None:
        dead = count(
            "SELECT count(*) FROM dead_letters d JOIN items i ON i.id = d.item_id "
            "WHERE d.queue = ? AND i.state = 'archived' AND d.archived_at < ?",
            queue,
            cut.archived_before,
        )
    if cut.dead_letters_before is not None:
        dead += count(
            "SELECT count(*) FROM dead_letters d JOIN items i ON i.id = d.item_id "
            "WHERE d.queue = ? AND i.state = 'dead_lettered' AND d.dead_at < ?",
            queue,
            cut.dead_letters_before,
        )
    if cut.audit_before is not None:
        audit = count(
            "SELECT count(*) FROM audit WHERE queue = ? AND at < ?", queue, cut.audit_before
        )
    return PurgeResult(succeeded=succeeded, dead_letters=dead, audit=audit, dry_run=True)


def has_effect(conn: sqlite3.Connection, effect_key: str) -> bool:
    """Whether a side effect with this key was recorded."""
    found = conn.execute("SELECT 1 FROM effects WHERE effect_key = ?", (effect_key,))
    return found.fetchone() is not None


def load_checkpoint(conn: sqlite3.Connection, name: str) -> bytes | None:
    """The latest snapshot of actor ``name``, or None."""
    row = conn.execute("SELECT state FROM checkpoints WHERE name = ?", (name,)).fetchone()
    return None if row is None else bytes(row[0])
