"""SQLite write primitives: each runs on the writer thread inside a transaction.

Each function takes the connection and the batch's timestamp, and raises a Garrison
error to refuse, in which case its savepoint is rolled back and nothing it did remains
(see ``_writer``). The state rules are not here: row-at-a-time changes apply what a rule
of ``_rules`` decided (:func:`transition`), and the set-based hot paths (lease, extend,
ack) state the same fence in their WHERE clauses and ask ``_rules`` why a row missed.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Mapping, Sequence

import msgspec

from runtime.store import _rules as rules
from runtime.store._backend import Admitted, ById, Changed, Decide, Expired, Pick
from runtime.store._envelope import ItemState, WorkItem, new_id
from runtime.store._queries import select_item
from runtime.store._records import EnqueueResult
from runtime.store._rows import ITEM_COLUMNS, encode_trace, item_from_row

AUDIT_INSERT = (
    "INSERT INTO audit (at, kind, queue, item_id, topic, from_state, to_state, attempt, "
    "max_attempts, error, wait_s, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# Two parameters per lease; SQLite allows 32,766 parameters per statement.
CHUNK = 4096


def in_list(values: Sequence[object]) -> tuple[str, list[object]]:
    """Placeholders and parameters for ``IN (...)``, padded to a power of two.

    Repeating the last value changes nothing in an IN list, and it keeps the number of
    distinct statement texts (and so of prepared statements SQLite caches per
    connection, each sized by its list) to a handful instead of one per batch size.
    """
    size = 1 << max(0, len(values) - 1).bit_length()
    padded: list[object] = [*values, *[values[-1]] * (size - len(values))] if values else [None]
    return ", ".join("?" * len(padded)), padded


def audit(
    conn: sqlite3.Connection,
    now: float,
    kind: str,
    queue: str,
    *,
    item: WorkItem | None = None,
    to_state: str | None = None,
    error: str | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    """Write one audit row (``item`` gives its id, topic, state left and attempt)."""
    conn.execute(
        AUDIT_INSERT,
        (
            now,
            kind,
            queue,
            None if item is None else item.id,
            None if item is None else item.topic,
            None if item is None else item.state.value,
            to_state,
            None if item is None else item.attempt,
            None if item is None else item.max_attempts,
            error,
            None,
            None if detail is None else msgspec.json.encode(detail).decode(),
        ),
    )


def enqueue_many(
    conn: sqlite3.Connection, now: float, queue: str, items: Sequence[Admitted]
) -> list[EnqueueResult]:
    """Insert admitted items; known idempotency keys return the old id."""
    results: list[EnqueueResult] = []
    rows: list[tuple[object, ...]] = []
    audits: list[tuple[object, ...]] = []
    # Keys first seen in this call: the inserts are not run yet, so look here too.
    fresh_keys: dict[str, str] = {}
    for admitted in items:
        item, key = admitted.item, admitted.item.idempotency_key
        item_id = new_id()
        if key is not None:
            found = fresh_keys.get(key)
            if found is None:
                row = conn.execute(
                    "SELECT id FROM items WHERE queue = ? AND idempotency_key = ?", (queue, key)
                ).fetchone()
                found = None if row is None else row[0]
            if found is not None:
                results.append(EnqueueResult(id=found, created=False))
                continue
            fresh_keys[key] = item_id
        rows.append(
            (
                item_id,
                queue,
                item.topic,
                item.key,
                item.priority,
                bytes(item.payload),
                admitted.sha256,
                key,
                admitted.max_attempts,
                now,
                now + item.delay_s,
                now,
                item.correlation_id or item_id,
                encode_trace(item.trace_context),
            )
        )
        results.append(EnqueueResult(id=item_id, created=True))
        audits.append(
            (now, "enqueued", queue, item_id, item.topic, None, "enqueued", 0)
            + (admitted.max_attempts, None, None, None)
        )
    conn.executemany(
        "INSERT INTO items (id, queue, topic, key, priority, payload, sha256, "
        "idempotency_key, state, attempt, max_attempts, created_at, available_at, "
        "updated_at, correlation_id, trace_context) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'enqueued', 0, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany(AUDIT_INSERT, audits)
    return results


def apply(conn: sqlite3.Connection, now: float, item: WorkItem, change: rules.Transition) -> None:
    """Write what ``change`` does to ``item`` (see :class:`~runtime.store._rules.Transition`)."""
    to = change.to_state
    if to is None:
        conn.execute("DELETE FROM items WHERE id = ?", (item.id,))
    else:
        conn.execute(
            "UPDATE items SET state = ?, updated_at = ?, "
            "available_at = coalesce(?, available_at), last_error = coalesce(?, last_error), "
            "finished_at = CASE WHEN ? THEN ? ELSE finished_at END, "
            "lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE id = ?",
            (to.value, now, change.available_at, change.error, to in rules.FINISHED, now, item.id),
        )
    if change.dead_reason is not None:
        conn.execute(
            "INSERT INTO dead_letters (item_id, queue, reason, error, traceback, attempts, "
            "dead_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                item.id,
                item.queue,
                change.dead_reason.value,
                change.error,
                change.traceback,
                item.attempt,
                now,
            ),
        )
    if to is ItemState.ARCHIVED:
        conn.execute("UPDATE dead_letters SET archived_at = ? WHERE item_id = ?", (now, item.id))
    audit(
        conn,
        now,
        change.kind,
        item.queue,
        item=item,
        to_state=None if to is None else to.value,
        error=change.error,
        detail=change.detail,
    )


def transition(
    conn: sqlite3.Connection, now: float, queue: str, pick: Pick, decide: Decide
) -> list[Changed]:
    """Select the picked rows, decide each and apply each (see ``Backend.transition``)."""
    if isinstance(pick, ById):
        found = select_item(conn, pick.item_id)
        if found is None:
            raise rules.missing(pick.item_id, dead_letter=pick.dead_letter)
        picked = [found]
    elif isinstance(pick, Expired):
        picked = [
            item_from_row(row)
            for row in conn.execute(
                f"SELECT {ITEM_COLUMNS} FROM items WHERE state = 'leased' "
                "AND lease_expires_at <= ? AND queue = ? ORDER BY lease_expires_at LIMIT ?",
                (now, queue, pick.limit),
            )
        ]
    else:
        picked = [
            item_from_row(row)
            for row in conn.execute(
                f"SELECT {ITEM_COLUMNS} FROM items INDEXED BY items_ready "
                "WHERE queue = ? AND state IN ('enqueued', 'retry_scheduled') "
                "ORDER BY priority ASC, seq DESC LIMIT ?",
                (queue, pick.limit),
            )
        ]
    changed: list[Changed] = []
    for item in picked:
        change = decide(item, now)
        apply(conn, now, item, change)
        changed.append((item, change))
    return changed


def lease(
    conn: sqlite3.Connection,
    now: float,
    queue: str,
    owner: str,
    n: int,
    lease_s: float,
    topics: Sequence[str] | None,
    reclaim: int,
) -> tuple[list[WorkItem], list[Changed]]:
    """Reclaim expired leases, then lease up to ``n`` ready items in lease order.

    Reclaiming first means a crashed worker's items run again within one lease period
    wherever any worker is leasing.
    """
    reclaimed = transition(conn, now, queue, Expired(reclaim), rules.decide_expired)
    topic_filter = ""
    params: list[object] = [queue, now]
    if topics:
        topic_filter = f" AND topic IN ({', '.join('?' * len(topics))})"
        params.extend(topics)
    params.append(n)
    seqs = [
        r[0]
        for r in conn.execute(
            "SELECT seq FROM items INDEXED BY items_ready "
            "WHERE queue = ? AND state IN ('enqueued', 'retry_scheduled') AND available_at <= ?"
            f"{topic_filter} ORDER BY priority DESC, seq LIMIT ?",
            params,
        )
    ]
    if not seqs:
        return [], reclaimed
    # Three set-based statements instead of a round of Python per item: the audit rows are
    # taken before the update (they need the state being left), then the update returns
    # the leased rows with tokens drawn by SQLite itself.
    marks, seq_params = in_list(seqs)
    owner_detail = msgspec.json.encode({"owner": owner}).decode()
    conn.execute(
        "INSERT INTO audit (at, kind, queue, item_id, topic, from_state, to_state, attempt, "
        "max_attempts, error, wait_s, detail) "
        "SELECT ?, 'leased', queue, id, topic, state, 'leased', attempt + 1, max_attempts, "
        f"NULL, max(0.0, ? - available_at), ? FROM items WHERE seq IN ({marks}) ORDER BY seq",
        [now, now, owner_detail, *seq_params],
    )
    rows = conn.execute(
        "UPDATE items SET state = 'leased', attempt = attempt + 1, lease_owner = ?, "
        "lease_token = lower(hex(randomblob(16))), lease_expires_at = ?, updated_at = ? "
        f"WHERE seq IN ({marks}) RETURNING {ITEM_COLUMNS}",
        [owner, now + lease_s, now, *seq_params],
    ).fetchall()
    leased = [item_from_row(row) for row in rows]
    # RETURNING has no defined order: restore the lease order.
    leased.sort(key=rules.lease_order)
    return leased, reclaimed


def _fence(chunk: Sequence[tuple[str, str]]) -> tuple[str, list[object]]:
    """The WHERE clause of a token-fenced batch and its parameters (the id list uses the
    id index; the id-and-token pairs are the fence of ``_rules.lease_refusal``)."""
    id_marks, ids = in_list([item_id for item_id, _ in chunk])
    pair_marks, pairs = in_list([f"{item_id} {token}" for item_id, token in chunk])
    where = (
        f"id IN ({id_marks}) AND state = 'leased' AND id || ' ' || lease_token IN ({pair_marks})"
    )
    return where, [*ids, *pairs]


def _refusal(conn: sqlite3.Connection, item_id: str, token: str) -> rules.Refusal:
    refusal = rules.lease_refusal(select_item(conn, item_id), item_id, token)
    if refusal is None:  # pragma: no cover - the guarded UPDATE missed a valid lease
        raise AssertionError(f"lease of {item_id} was valid but the fenced update missed it")
    return refusal


def extend(
    conn: sqlite3.Connection, now: float, leases: Sequence[tuple[str, str]], lease_s: float
) -> list[float | rules.Refusal]:
    """Extend many fenced leases to ``now + lease_s``: one guarded UPDATE per chunk; only
    refused leases pay for a second look to say why."""
    extended: set[tuple[str, str]] = set()
    expires = now + lease_s
    for start in range(0, len(leases), CHUNK):
        where, params = _fence(leases[start : start + CHUNK])
        extended.update(
            (row[0], row[1])
            for row in conn.execute(
                "UPDATE items SET lease_expires_at = ?, updated_at = ? "
                f"WHERE {where} RETURNING id, lease_token",
                [expires, now, *params],
            )
        )
    return [
        expires if (item_id, token) in extended else _refusal(conn, item_id, token)
        for item_id, token in leases
    ]


def ack_many(
    conn: sqlite3.Connection,
    now: float,
    leases: Sequence[tuple[str, str]],
    effects: Mapping[str, Sequence[str]] | None = None,
) -> list[rules.Refusal | None]:
    """Acknowledge many fenced leases, recording their effects in the same transaction.

    Set-based: one audit INSERT and one guarded UPDATE per chunk (``_rules.decide_ack``
    as a WHERE clause). Only refused leases pay for a second look to say why.
    """
    # An id named twice in one batch: only the pair with its current token is the ack
    # (the update clears the token, so it is read first; rare, and only for those ids).
    counts = collections.Counter(item_id for item_id, _ in leases)
    repeated = [item_id for item_id, n in counts.items() if n > 1]
    current: dict[str, str] = {}
    for start in range(0, len(repeated), CHUNK):
        marks, ids = in_list(repeated[start : start + CHUNK])
        current.update(
            conn.execute(
                f"SELECT id, lease_token FROM items WHERE id IN ({marks}) AND state = 'leased'",
                ids,
            ).fetchall()
        )
    acked: set[str] = set()
    for start in range(0, len(leases), CHUNK):
        where, params = _fence(leases[start : start + CHUNK])
        conn.execute(
            "INSERT INTO audit (at, kind, queue, item_id, topic, from_state, to_state, "
            "attempt, max_attempts) SELECT ?, 'succeeded', queue, id, topic, 'leased', "
            f"'succeeded', attempt, max_attempts FROM items WHERE {where}",
            [now, *params],
        )
        acked.update(
            row[0]
            for row in conn.execute(
                "UPDATE items SET state = 'succeeded', updated_at = ?, finished_at = ?, "
                f"lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL "
                f"WHERE {where} RETURNING id",
                [now, now, *params],
            )
        )
    if effects:
        conn.executemany(
            "INSERT OR IGNORE INTO effects (effect_key, item_id, recorded_at) VALUES (?, ?, ?)",
            [(key, i, now) for i in acked for key in effects.get(i, ())],
        )
    outcomes: list[rules.Refusal | None] = []
    for item_id, token in leases:
        if item_id in acked and current.get(item_id, token) == token:
            acked.discard(item_id)  # a second ack of the same lease in one batch is stale
            outcomes.append(None)
        else:
            outcomes.append(_refusal(conn, item_id, token))
    return outcomes


def replay(
    conn: sqlite3.Connection,
    now: float,
    item_id: str,
    force: bool,
    extra_trace: dict[str, str] | None = None,
) -> str:
    """Enqueue a dead letter's payload again as a new item linked to it; return its id."""
    row = conn.execute(
        "SELECT replay_count FROM dead_letters WHERE item_id = ?", (item_id,)
    ).fetchone()
    item = None if row is None else select_item(conn, item_id)
    if row is None or item is None:
        raise rules.missing(item_id, dead_letter=True)
    refusal = rules.replay_refusal(item_id, item.state, int(row[0]), force=force)
    if refusal is not None:
        raise refusal
    new = rules.replay_copy(item, new_id(), now, extra_trace)
    conn.execute(
        "INSERT INTO items (id, queue, topic, key, priority, payload, sha256, state, attempt, "
        "max_attempts, created_at, available_at, updated_at, correlation_id, trace_context, "
        "replay_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            new.id,
            new.queue,
            new.topic,
            new.key,
            new.priority,
            new.payload,
            new.sha256,
            new.state.value,
            new.attempt,
            new.max_attempts,
            new.created_at,
            new.available_at,
            new.updated_at,
            new.correlation_id,
            encode_trace(new.trace_context),
            new.replay_of,
        ),
    )
    conn.execute(
        "UPDATE dead_letters SET replay_count = replay_count + 1, replayed_at = ?, "
        "replayed_item_id = ? WHERE item_id = ?",
        (now, new.id, item_id),
    )
    audit(
        conn,
        now,
        "replayed",
        item.queue,
        item=item,
        to_state=item.state.value,
        detail={"replayed_item_id": new.id, "forced": force},
    )
    conn.execute(
        AUDIT_INSERT,
        (now, "enqueued", item.queue, new.id, item.topic, None, "enqueued", 0, item.max_attempts)
        + (None, None, msgspec.json.encode({"replay_of": item.id}).decode()),
    )
    return new.id
