"""The work item envelope, its states, dead-letter records, and the intake gate."""

from __future__ import annotations

import enum
import hashlib
import os
import re
import time

import msgspec

from runtime._errors import ChecksumMismatch, PayloadTooLarge, ValidationFailed

TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")
MAX_KEY_LENGTH = 256
MAX_ERROR_LENGTH = 8192
PRIORITY_RANGE = (-1_000_000, 1_000_000)
MAX_ATTEMPTS_CAP = 1000
MAX_TRACE_ENTRIES = 32
MAX_TRACE_VALUE_LENGTH = 4096


class ItemState(enum.StrEnum):
    """Where a work item is in its life (see DESIGN.md)."""

    ENQUEUED = "enqueued"
    LEASED = "leased"
    SUCCEEDED = "succeeded"
    RETRY_SCHEDULED = "retry_scheduled"
    DEAD_LETTERED = "dead_lettered"
    ARCHIVED = "archived"


READY_STATES = (ItemState.ENQUEUED, ItemState.RETRY_SCHEDULED)


class DeadReason(enum.StrEnum):
    """Why an item became a dead letter."""

    VALIDATION = "validation"
    TERMINAL_ERROR = "terminal_error"
    RETRIES_EXHAUSTED = "retries_exhausted"
    LEASE_EXPIRED = "lease_expired"
    SHED = "shed"
    TIMEOUT = "timeout"


class NewItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a producer hands to ``enqueue``.

    ``payload`` is opaque bytes; ``sha256``, when given, must match it. ``max_attempts``
    defaults to the store's retry policy. Higher ``priority`` is leased first.
    """

    topic: str
    payload: bytes
    key: str | None = None
    priority: int = 0
    idempotency_key: str | None = None
    max_attempts: int | None = None
    sha256: str | None = None
    correlation_id: str | None = None
    trace_context: dict[str, str] | None = None
    delay_s: float = 0.0


class WorkItem(msgspec.Struct, frozen=True):
    """A work item as stored. ``lease_token`` is set only while it is leased."""

    id: str
    seq: int
    queue: str
    topic: str
    key: str | None
    priority: int
    payload: bytes
    sha256: str
    idempotency_key: str | None
    state: ItemState
    attempt: int
    max_attempts: int
    created_at: float
    available_at: float
    updated_at: float
    correlation_id: str | None
    trace_context: dict[str, str] | None
    last_error: str | None
    lease_owner: str | None
    lease_token: str | None
    lease_expires_at: float | None
    replay_of: str | None


class DeadLetter(msgspec.Struct, frozen=True):
    """A dead letter: the item that could not be done, and why.

    The payload stays in the item row (``item_id`` is the payload reference); the record
    carries its hash so a replay can prove it sends what failed.
    """

    item_id: str
    queue: str
    topic: str
    key: str | None
    priority: int
    reason: DeadReason
    error: str | None
    traceback: str | None
    attempts: int
    max_attempts: int
    payload_sha256: str
    payload_size: int
    correlation_id: str | None
    dead_at: float
    archived_at: float | None
    replay_count: int
    replayed_at: float | None
    replayed_item_id: str | None


class Failure(msgspec.Struct, frozen=True):
    """What a worker reports when an attempt fails."""

    error: str
    error_type: str = "Exception"
    traceback: str | None = None
    terminal: bool = False
    timeout: bool = False


def new_id() -> str:
    """A fresh item id: 48 bits of milliseconds, then 80 random bits, as 32 hex digits.

    Time-ordered ids land at the right edge of the id indexes, so inserts touch a few hot
    pages instead of random ones all over the B-tree (a large share of enqueue cost).
    """
    return f"{time.time_ns() // 1_000_000 & 0xFFFFFFFFFFFF:012x}{os.urandom(10).hex()}"


def payload_digest(payload: bytes) -> str:
    """Hex SHA-256 of a payload."""
    return hashlib.sha256(payload).hexdigest()


def _check_text(value: str | None, field: str, limit: int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be a string", field=field)
    if not value or len(value) > limit:
        raise ValidationFailed(f"{field} must be 1 to {limit} characters", field=field)
    if any(ord(ch) < 32 for ch in value):
        raise ValidationFailed(f"{field} must not contain control characters", field=field)


def _check_trace_context(context: object) -> None:
    # Stored as JSON and read back as dict[str, str]: anything else would make the item
    # unreadable later, so it is refused here.
    if context is None:
        return
    if not isinstance(context, dict) or len(context) > MAX_TRACE_ENTRIES:
        raise ValidationFailed(
            f"trace_context must be a dict of at most {MAX_TRACE_ENTRIES} entries",
            field="trace_context",
        )
    for name, value in context.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValidationFailed(
                "trace_context keys and values must be strings", field="trace_context"
            )
        if len(name) > MAX_KEY_LENGTH or len(value) > MAX_TRACE_VALUE_LENGTH:
            raise ValidationFailed("trace_context entry is too long", field="trace_context")


def validate_new_item(item: NewItem, *, max_payload_bytes: int) -> str:
    """Check an item at the intake gate and return its payload's SHA-256.

    Raises:
        ValidationFailed: a field is of the wrong type or outside its bounds.
        PayloadTooLarge: the payload is over ``max_payload_bytes``.
        ChecksumMismatch: ``item.sha256`` does not match the payload.
    """
    # fullmatch, not match: the pattern's ``$`` also matches before a trailing newline.
    if not isinstance(item.topic, str) or not TOPIC_PATTERN.fullmatch(item.topic):
        raise ValidationFailed(
            f"topic {item.topic!r} is not valid: use 1-200 of A-Z a-z 0-9 . _ : / - "
            "starting with a letter or digit",
            field="topic",
        )
    if not isinstance(item.payload, bytes | bytearray | memoryview):
        raise ValidationFailed("payload must be bytes", field="payload")
    if len(item.payload) > max_payload_bytes:
        raise PayloadTooLarge(
            f"payload is {len(item.payload)} bytes, over the limit of {max_payload_bytes}",
            field="payload",
        )
    _check_text(item.key, "key", MAX_KEY_LENGTH)
    _check_text(item.idempotency_key, "idempotency_key", MAX_KEY_LENGTH)
    _check_text(item.correlation_id, "correlation_id", MAX_KEY_LENGTH)
    if isinstance(item.priority, bool) or not isinstance(item.priority, int):
        raise ValidationFailed("priority must be an integer", field="priority")
    low, high = PRIORITY_RANGE
    if not low <= item.priority <= high:
        raise ValidationFailed(f"priority must be within [{low}, {high}]", field="priority")
    if item.max_attempts is not None and (
        isinstance(item.max_attempts, bool)
        or not isinstance(item.max_attempts, int)
        or not 1 <= item.max_attempts <= MAX_ATTEMPTS_CAP
    ):
        raise ValidationFailed(
            f"max_attempts must be an integer within [1, {MAX_ATTEMPTS_CAP}]",
            field="max_attempts",
        )
    if (
        isinstance(item.delay_s, bool)
        or not isinstance(item.delay_s, int | float)
        or not 0 <= item.delay_s <= 366 * 86400
    ):
        raise ValidationFailed("delay_s must be within [0, one year]", field="delay_s")
    _check_trace_context(item.trace_context)
    digest = payload_digest(bytes(item.payload))
    if item.sha256 is not None:
        supplied = item.sha256.lower() if isinstance(item.sha256, str) else item.sha256
        if not isinstance(supplied, str) or not re.fullmatch(r"[0-9a-f]{64}", supplied):
            raise ValidationFailed("sha256 must be 64 hex digits", field="sha256")
        if supplied != digest:
            raise ChecksumMismatch(
                f"sha256 {supplied} does not match the payload (its SHA-256 is {digest})",
                field="sha256",
            )
    return digest


def truncate_error(text: str | None) -> str | None:
    """Bound an error text so one bad handler cannot bloat the database."""
    if text is None or len(text) <= MAX_ERROR_LENGTH:
        return text
    return text[: MAX_ERROR_LENGTH - 15] + "... [truncated]"
