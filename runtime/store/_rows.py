"""Mapping rows of the SQLite tables to records."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from runtime.store._envelope import DeadLetter, DeadReason, ItemState, WorkItem

ITEM_COLUMNS = (
    "id, seq, queue, topic, key, priority, payload, sha256, idempotency_key, state, attempt, "
    "max_attempts, created_at, available_at, updated_at, correlation_id, trace_context, "
    "last_error, lease_owner, lease_token, lease_expires_at, replay_of"
)

DEAD_LETTER_COLUMNS = (
    "d.item_id, d.queue, i.topic, i.key, i.priority, d.reason, d.error, d.traceback, "
    "d.attempts, i.max_attempts, i.sha256, length(i.payload), i.correlation_id, d.dead_at, "
    "d.archived_at, d.replay_count, d.replayed_at, d.replayed_item_id"
)

_trace_decoder = msgspec.json.Decoder(dict[str, str])


def encode_trace(context: dict[str, str] | None) -> str | None:
    """Trace context as stored (JSON text)."""
    return None if context is None else msgspec.json.encode(context).decode()


def item_from_row(row: sqlite3.Row | tuple[Any, ...]) -> WorkItem:
    """A :class:`WorkItem` from a row selected with :data:`ITEM_COLUMNS`."""
    trace = row[16]
    return WorkItem(
        id=row[0],
        seq=row[1],
        queue=row[2],
        topic=row[3],
        key=row[4],
        priority=row[5],
        payload=bytes(row[6]),
        sha256=row[7],
        idempotency_key=row[8],
        state=ItemState(row[9]),
        attempt=row[10],
        max_attempts=row[11],
        created_at=row[12],
        available_at=row[13],
        updated_at=row[14],
        correlation_id=row[15],
        trace_context=None if trace is None else _trace_decoder.decode(trace),
        last_error=row[17],
        lease_owner=row[18],
        lease_token=row[19],
        lease_expires_at=row[20],
        replay_of=row[21],
    )


def dead_letter_from_row(row: sqlite3.Row | tuple[Any, ...]) -> DeadLetter:
    """A :class:`DeadLetter` from a row selected with :data:`DEAD_LETTER_COLUMNS`."""
    return DeadLetter(
        item_id=row[0],
        queue=row[1],
        topic=row[2],
        key=row[3],
        priority=row[4],
        reason=DeadReason(row[5]),
        error=row[6],
        traceback=row[7],
        attempts=row[8],
        max_attempts=row[9],
        payload_sha256=row[10],
        payload_size=row[11],
        correlation_id=row[12],
        dead_at=row[13],
        archived_at=row[14],
        replay_count=row[15],
        replayed_at=row[16],
        replayed_item_id=row[17],
    )
