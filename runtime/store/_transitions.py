"""State changes of work items, each written with its audit row in the same transaction.

Every function here runs on the writer thread inside a transaction (see ``_writer``):
it takes the connection and the batch's timestamp, and raises a Garrison error to
refuse, in which case its savepoint is rolled back and nothing it did remains.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping, Sequence

import msgspec

from policies import FailureKind, RetryPolicy
from runtime._errors import (
    InvalidTransition,
    ItemNotFound,
    ReplayRefused,
    StaleLease,
)
from runtime.store._envelope import (
    DeadReason,
    Failure,
    ItemState,
    NewItem,
    WorkItem,
    truncate_error,
)
from runtime.store._rows import ITEM_COLUMNS, encode_trace, item_from_row

AUDIT_INSERT = (
    "INSERT INTO audit (at, kind, queue, item_id, topic, from_state, to_state, attempt, "
    "max_attempts, error, wait_s, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

AuditRow = tuple[
    float,
    str,
    str,
    str | None,
    str | None,
    str | None,
    str | None,
    int | None,
    int | None,
    str | None,
    float | None,
    str | None,
]


class EnqueueResult(msgspec.Struct, frozen=True):
    """The id of an enqueued item; ``created`` is False when an idempotency key matched."""

    id: str
    created: bool


class FailOutcome(msgspec.Struct, frozen=True):
    """What became of a failed item: retried after ``delay_s``, or dead-lettered."""

    state: ItemState
    delay_s: float
    reason: DeadReason | None


def in_list(values: Sequence[object]) -> tuple[str, list[object]]:
    """Placeholders and parameters for ``IN (...)``, padded to a power of two.

    Repeating the last value changes nothing in an IN list, and it keeps the number of
    distinct statement texts (and so of prepared statements SQLite caches per
    connection, each sized by its list) to a handful instead of one per batch size.
    """
    size = 1 << max(0, len(values) - 1).bit_length()
    padded: list[object] = [*values, *[values[-1]] * (size - len(values))] if values else [None]
    return ", ".join("?" * len(padded)), padded


def new_id() -> str:
    """A fresh item id: 48 bits of milliseconds, then 80 random bits, as 32 hex digits.

    Time-ordered ids land at the right edge of the id indexes, so inserts touch a few hot
    pages instead of random ones all over the B-tree (a large share of enqueue cost).
    """
    return f"{time.time_ns() // 1_000_000 & 0xFFFFFFFFFFFF:012x}{os.urandom(10).hex()}"


def audit(
    conn: sqlite3.Connection,
    now: float,
    kind: str,
    queue: str,
    *,
    item: WorkItem | None = None,
    to_state: str | None = None,
    attempt: int | None = None,
    error: str | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    """Write one audit row."""
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
            attempt if attempt is not None else (None if item is None else item.attempt),
            None if item is None else item.max_attempts,
            error,
            None,
            None if detail is None else msgspec.json.encode(detail).decode(),
        ),
    )


def enqueue_many(
    conn: sqlite3.Connection,
    now: float,
    queue: str,
    items: Sequence[tuple[NewItem, str]],
    default_max_attempts: int,
) -> list[EnqueueResult]:
    """Insert validated items (each with its digest); known idempotency keys return the old id."""
    results: list[EnqueueResult] = []
    rows: list[tuple[object, ...]] = []
    audits: list[AuditRow] = []
    # Keys first seen in this call: the inserts are not run yet, so look here too.
    fresh_keys: dict[str, str] = {}
    for item, digest in items:
        key = item.idempotency_key
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
        max_attempts = item.max_attempts or default_max_attempts
        rows.append(
            (
                item_id,
                queue,
                item.topic,
                item.key,
                item.priority,
                bytes(item.payload),
                digest,
                key,
                max_attempts,
                now,
                now + item.delay_s,
                now,
                item.correlation_id or item_id,
                encode_trace(item.trace_context),
            )
        )
        results.append(EnqueueResult(id=item_id, created=True))
        audits.append(
            (now, "enqueued", queue, item_id, item.topic, None, "enqueued", 0, max_attempts)
            + (None, None, None)
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


def _select_item(conn: sqlite3.Connection, item_id: str) -> WorkItem:
    row = conn.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
    if row is None:
        raise ItemNotFound(f"no work item with id {item_id!r}")
    return item_from_row(row)


def _dead_letter(
    conn: sqlite3.Connection,
    now: float,
    item: WorkItem,
    reason: DeadReason,
    error: str | None,
    traceback: str | None,
) -> None:
    conn.execute(
        "UPDATE items SET state = 'dead_lettered', updated_at = ?, finished_at = ?, "
        "last_error = ?, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL "
        "WHERE id = ?",
        (now, now, error, item.id),
    )
    conn.execute(
        "INSERT INTO dead_letters (item_id, queue, reason, error, traceback, attempts, dead_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (item.id, item.queue, reason.value, error, traceback, item.attempt, now),
    )
    audit(
        conn,
        now,
        "dead_lettered",
        item.queue,
        item=item,
        to_state="dead_lettered",
        error=error,
        detail={"reason": reason.value},
    )


def reclaim_expired(
    conn: sqlite3.Connection,
    now: float,
    queue: str,
    limit: int,
    dead: list[WorkItem] | None = None,
) -> int:
    """Return items whose lease expired to the queue, or dead-letter them if out of attempts.

    Items dead-lettered are appended to ``dead`` when given (for telemetry).
    """
    rows = conn.execute(
        f"SELECT {ITEM_COLUMNS} FROM items WHERE state = 'leased' AND lease_expires_at <= ? "
        "AND queue = ? ORDER BY lease_expires_at LIMIT ?",
        (now, queue, limit),
    ).fetchall()
    for row in rows:
        item = item_from_row(row)
        error = f"lease held by {item.lease_owner} expired (attempt {item.attempt})"
        if item.attempt >= item.max_attempts:
            _dead_letter(conn, now, item, DeadReason.LEASE_EXPIRED, error, None)
            if dead is not None:
                dead.append(item)
            continue
        conn.execute(
            "UPDATE items SET state = 'enqueued', updated_at = ?, available_at = ?, "
            "last_error = ?, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL "
            "WHERE id = ?",
            (now, now, error, item.id),
        )
        audit(conn, now, "lease_expired", queue, item=item, to_state="enqueued", error=error)
    return len(rows)


def lease(
    conn: sqlite3.Connection,
    now: float,
    queue: str,
    owner: str,
    n: int,
    lease_s: float,
    topics: Sequence[str] | None,
    reclaim_limit: int,
) -> list[WorkItem]:
    """Lease up to ``n`` ready items: highest priority first, then oldest (by sequence).

    Expired leases are reclaimed first, so a crashed worker's items run again within one
    lease period wherever any worker is leasing.
    """
    reclaim_expired(conn, now, queue, reclaim_limit)
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
        return []
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
    leased.sort(key=lambda item: (-item.priority, item.seq))
    return leased


def _leased_item(conn: sqlite3.Connection, item_id: str, token: str) -> WorkItem:
    item = _select_item(conn, item_id)
    if item.state is not ItemState.LEASED or item.lease_token != token:
        raise StaleLease(
            f"lease token for item {item_id} is stale: the item is {item.state.value}"
            + ("" if item.state is not ItemState.LEASED else " under a newer lease")
        )
    return item


def heartbeat(
    conn: sqlite3.Connection, now: float, item_id: str, token: str, lease_s: float
) -> float:
    """Extend a lease; return its new expiry."""
    _leased_item(conn, item_id, token)
    expires = now + lease_s
    conn.execute(
        "UPDATE items SET lease_expires_at = ?, updated_at = ? WHERE id = ?",
        (expires, now, item_id),
    )
    return expires


# Two parameters per lease; SQLite allows 32,766 parameters per statement.
_ACK_CHUNK = 4096


def heartbeat_many(
    conn: sqlite3.Connection,
    now: float,
    leases: Sequence[tuple[str, str]],
    lease_s: float,
) -> list[StaleLease | ItemNotFound | None]:
    """Extend many leases to ``now + lease_s``; each entry is None or the error refusing it.

    One guarded UPDATE per chunk (the id-and-token pairs are the fence, as in
    :func:`ack_many`); only refused leases pay for a second look to say why.
    """
    extended: set[tuple[str, str]] = set()
    for start in range(0, len(leases), _ACK_CHUNK):
        chunk = leases[start : start + _ACK_CHUNK]
        id_marks, ids = in_list([item_id for item_id, _ in chunk])
        pair_marks, pairs = in_list([f"{item_id} {token}" for item_id, token in chunk])
        extended.update(
            (row[0], row[1])
            for row in conn.execute(
                "UPDATE items SET lease_expires_at = ?, updated_at = ? "
                f"WHERE id IN ({id_marks}) AND state = 'leased' "
                f"AND id || ' ' || lease_token IN ({pair_marks}) RETURNING id, lease_token",
                [now + lease_s, now, *ids, *pairs],
            )
        )
    outcomes: list[StaleLease | ItemNotFound | None] = []
    for item_id, token in leases:
        if (item_id, token) in extended:
            outcomes.append(None)
            continue
        try:
            _leased_item(conn, item_id, token)
        except (StaleLease, ItemNotFound) as exc:
            outcomes.append(exc)
        else:  # pragma: no cover - the guarded UPDATE missed a valid lease
            raise AssertionError(f"lease of {item_id} was valid but not extended")
    return outcomes


def ack(
    conn: sqlite3.Connection,
    now: float,
    item_id: str,
    token: str,
    effects: Sequence[str] = (),
) -> None:
    """Mark a leased item succeeded, recording its delivered ``effects`` in the same
    transaction (so either both are durable or neither is)."""
    error = ack_many(conn, now, [(item_id, token)], {item_id: effects})[0]
    if error is not None:
        raise error


def ack_many(
    conn: sqlite3.Connection,
    now: float,
    leases: Sequence[tuple[str, str]],
    effects: Mapping[str, Sequence[str]] | None = None,
) -> list[StaleLease | ItemNotFound | None]:
    """Acknowledge many leases; each entry is None or the error refusing that one.

    Set-based: one audit INSERT and one guarded UPDATE for the whole batch (the id list
    uses the id index; the id-and-token pairs are the fence). Only refused leases pay for
    a second look to say why.
    """
    acked: set[str] = set()
    for start in range(0, len(leases), _ACK_CHUNK):
        chunk = leases[start : start + _ACK_CHUNK]
        id_marks, ids = in_list([item_id for item_id, _ in chunk])
        pair_marks, pairs = in_list([f"{item_id} {token}" for item_id, token in chunk])
        where = (
            f"id IN ({id_marks}) AND state = 'leased' "
            f"AND id || ' ' || lease_token IN ({pair_marks})"
        )
        conn.execute(
            "INSERT INTO audit (at, kind, queue, item_id, topic, from_state, to_state, "
            "attempt, max_attempts) SELECT ?, 'succeeded', queue, id, topic, 'leased', "
            f"'succeeded', attempt, max_attempts FROM items WHERE {where}",
            [now, *ids, *pairs],
        )
        acked.update(
            row[0]
            for row in conn.execute(
                "UPDATE items SET state = 'succeeded', updated_at = ?, finished_at = ?, "
                "lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL "
                f"WHERE {where} RETURNING id",
                [now, now, *ids, *pairs],
            )
        )
    if effects:
        conn.executemany(
            "INSERT OR IGNORE INTO effects (effect_key, item_id, recorded_at) VALUES (?, ?, ?)",
            [(key, i, now) for i in acked for key in effects.get(i, ())],
        )
    outcomes: list[StaleLease | ItemNotFound | None] = []
    for item_id, token in leases:
        if item_id in acked:
            acked.discard(item_id)  # a second ack of the same lease in one batch is stale
            outcomes.append(None)
            continue
        try:
            _leased_item(conn, item_id, token)
        except (StaleLease, ItemNotFound) as exc:
            outcomes.append(exc)
        else:  # pragma: no cover - the guarded UPDATE missed a valid lease
            raise AssertionError(f"lease of {item_id} was valid but not acknowledged")
    return outcomes


def fail(
    conn: sqlite3.Connection,
    now: float,
    item_id: str,
    token: str,
    failure: Failure,
    policy: RetryPolicy,
    rand: float,
) -> FailOutcome:
    """Record a failed attempt: schedule a retry by policy, or dead-letter the item."""
    item = _leased_item(conn, item_id, token)
    error = truncate_error(f"{failure.error_type}: {failure.error}")
    kind = policy.classify(
        failure.error_type,
        FailureKind.TERMINAL
        if failure.terminal
        else FailureKind.TIMEOUT
        if failure.timeout
        else None,
    )
    decision = policy.decide(item.attempt, item.max_attempts, kind, rand)
    if not decision.retry:
        reason = DeadReason(decision.reason or DeadReason.RETRIES_EXHAUSTED.value)
        _dead_letter(conn, now, item, reason, error, truncate_error(failure.traceback))
        return FailOutcome(state=ItemState.DEAD_LETTERED, delay_s=0.0, reason=reason)
    conn.execute(
        "UPDATE items SET state = 'retry_scheduled', updated_at = ?, available_at = ?, "
        "last_error = ?, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL "
        "WHERE id = ?",
        (now, now + decision.delay_s, error, item_id),
    )
    audit(
        conn,
        now,
        "retry_scheduled",
        item.queue,
        item=item,
        to_state="retry_scheduled",
        error=error,
        detail={"delay_s": round(decision.delay_s, 6)},
    )
    return FailOutcome(state=ItemState.RETRY_SCHEDULED, delay_s=decision.delay_s, reason=None)


def dead_letter_now(
    conn: sqlite3.Connection, now: float, item_id: str, reason: DeadReason, error: str
) -> None:
    """Dead-letter an item that is waiting or leased (used for shedding and validation)."""
    item = _select_item(conn, item_id)
    if item.state not in (ItemState.ENQUEUED, ItemState.RETRY_SCHEDULED, ItemState.LEASED):
        raise InvalidTransition(f"item {item_id} is {item.state.value}; it cannot be dead-lettered")
    _dead_letter(conn, now, item, reason, truncate_error(error), None)


def shed_lowest(
    conn: sqlite3.Connection, now: float, queue: str, n: int, dead_letter: bool
) -> list[str]:
    """Shed up to ``n`` waiting items, lowest priority first and newest first among equals.

    Shed items are dead-lettered with reason ``shed`` (so an operator can replay them) or,
    without ``dead_letter``, deleted; either way each is audited.
    """
    rows = conn.execute(
        f"SELECT {ITEM_COLUMNS} FROM items INDEXED BY items_ready "
        "WHERE queue = ? AND state IN ('enqueued', 'retry_scheduled') "
        "ORDER BY priority ASC, seq DESC LIMIT ?",
        (queue, n),
    ).fetchall()
    shed: list[str] = []
    for row in rows:
        item = item_from_row(row)
        error = f"shed under pressure (priority {item.priority})"
        if dead_letter:
            _dead_letter(conn, now, item, DeadReason.SHED, error, None)
        else:
            conn.execute("DELETE FROM items WHERE id = ?", (item.id,))
            audit(conn, now, "shed", queue, item=item, to_state=None, error=error)
        shed.append(item.id)
    return shed


def _dead_lettered(conn: sqlite3.Connection, item_id: str) -> tuple[WorkItem, int]:
    row = conn.execute(
        "SELECT replay_count FROM dead_letters WHERE item_id = ?", (item_id,)
    ).fetchone()
    if row is None:
        raise ItemNotFound(f"no dead letter with id {item_id!r}")
    return _select_item(conn, item_id), int(row[0])


def replay(
    conn: sqlite3.Connection,
    now: float,
    item_id: str,
    force: bool,
    default_max_attempts: int,
    extra_trace: dict[str, str] | None = None,
) -> str:
    """Enqueue a dead letter's payload again as a new item linked to it; return its id.

    The new item keeps the dead item's trace context, plus ``extra_trace`` entries (the
    replay span's context, so the new item's process span links to its replay).
    """
    item, replay_count = _dead_lettered(conn, item_id)
    if item.state is not ItemState.DEAD_LETTERED:
        raise InvalidTransition(
            f"dead letter {item_id} is {item.state.value}; only live dead letters are replayed"
        )
    if replay_count and not force:
        raise ReplayRefused(
            f"dead letter {item_id} was already replayed {replay_count} time(s); "
            "pass force to replay it again"
        )
    new = new_id()
    conn.execute(
        "INSERT INTO items (id, queue, topic, key, priority, payload, sha256, state, attempt, "
        "max_attempts, created_at, available_at, updated_at, correlation_id, trace_context, "
        "replay_of) VALUES (?, ?, ?, ?, ?, ?, ?, 'enqueued', 0, ?, ?, ?, ?, ?, ?, ?)",
        (
            new,
            item.queue,
            item.topic,
            item.key,
            item.priority,
            item.payload,
            item.sha256,
            item.max_attempts or default_max_attempts,
            now,
            now,
            now,
            item.correlation_id,
            encode_trace(
                {**(item.trace_context or {}), **extra_trace} if extra_trace else item.trace_context
            ),
            item.id,
        ),
    )
    conn.execute(
        "UPDATE dead_letters SET replay_count = replay_count + 1, replayed_at = ?, "
        "replayed_item_id = ? WHERE item_id = ?",
        (now, new, item_id),
    )
    audit(
        conn,
        now,
        "replayed",
        item.queue,
        item=item,
        to_state=item.state.value,
        detail={"replayed_item_id": new, "forced": force},
    )
    conn.execute(
        AUDIT_INSERT,
        (now, "enqueued", item.queue, new, item.topic, None, "enqueued", 0, item.max_attempts)
        + (None, None, msgspec.json.encode({"replay_of": item.id}).decode()),
    )
    return new


def archive(conn: sqlite3.Connection, now: float, item_id: str) -> None:
    """Move a dead letter out of the live list; it stays until purged."""
    item, _ = _dead_lettered(conn, item_id)
    if item.state is not ItemState.DEAD_LETTERED:
        raise InvalidTransition(f"dead letter {item_id} is already {item.state.value}")
    conn.execute(
        "UPDATE items SET state = 'archived', updated_at = ?, finished_at = ? WHERE id = ?",
        (now, now, item_id),
    )
    conn.execute("UPDATE dead_letters SET archived_at = ? WHERE item_id = ?", (now, item_id))
    audit(conn, now, "archived", item.queue, item=item, to_state="archived")


def _delete_items(
    conn: sqlite3.Connection, now: float, queue: str, kind: str, ids: list[str]
) -> int:
    if not ids:
        return 0
    conn.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in ids])
    audit(conn, now, kind, queue, detail={"count": len(ids), "first_ids": ids[:20]})
    return len(ids)


def purge_dead_letters(
    conn: sqlite3.Connection,
    now: float,
    queue: str,
    before: float,
    include_live: bool,
    limit: int,
    *,
    live_only: bool = False,
) -> int:
    """Delete archived (and, with ``include_live``, live) dead letters older than ``before``.

    With ``live_only`` only live (not archived) dead letters are deleted: the retention
    purge uses it so that its ``dead_letters_s`` age never touches archived rows, which
    ``archived_s`` governs (``None`` there keeps them forever).
    """
    if live_only:
        states = "('dead_lettered')"
    else:
        states = "('archived', 'dead_lettered')" if include_live else "('archived')"
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT d.item_id FROM dead_letters d JOIN items i ON i.id = d.item_id "
            f"WHERE d.queue = ? AND i.state IN {states} "
            "AND coalesce(d.archived_at, d.dead_at) < ? LIMIT ?",
            (queue, before, limit),
        )
    ]
    return _delete_items(conn, now, queue, "dead_letters_purged", ids)


def purge_succeeded(
    conn: sqlite3.Connection, now: float, queue: str, before: float, limit: int
) -> int:
    """Delete succeeded items finished before ``before``."""
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM items WHERE queue = ? AND state = 'succeeded' AND finished_at < ? "
            "LIMIT ?",
            (queue, before, limit),
        )
    ]
    return _delete_items(conn, now, queue, "succeeded_purged", ids)


def purge_audit(conn: sqlite3.Connection, now: float, queue: str, before: float) -> int:
    """Delete audit rows older than ``before``; the purge itself is audited."""
    count = conn.execute("DELETE FROM audit WHERE queue = ? AND at < ?", (queue, before)).rowcount
    if count:
        audit(conn, now, "audit_purged", queue, detail={"count": count})
    return count


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
