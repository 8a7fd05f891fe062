"""The work item envelope, its states, dead-letter records, and the intake gate."""

from __future__ import annotations

import enum
import hashlib
import os
import re
import time
from typing import Annotated

import msgspec

from policies import check_bounds
from runtime._errors import ChecksumMismatch, PayloadTooLarge, ValidationFailed

TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
MAX_KEY_LENGTH = 256
MAX_TOPIC_LENGTH = 200
MAX_ERROR_LENGTH = 8192
PRIORITY_RANGE = (-1_000_000, 1_000_000)
MAX_ATTEMPTS_CAP = 1000
MAX_TRACE_ENTRIES = 32
MAX_TRACE_VALUE_LENGTH = 4096
MAX_DELAY_S = 366 * 86400


class ItemState(enum.StrEnum):
    """Where a work item is in its life (see DESIGN.md)."""

    ENQUEUED = "enqueued"
    LEASED = "leased"
    SUCCEEDED = "succeeded"
    RETRY_SCHEDULED = "retry_scheduled"
    DEAD_LETTERED = "dead_lettered"
    ARCHIVED = "archived"


class DeadReason(enum.StrEnum):
    """Why an item became a dead letter."""

    VALIDATION = "validation"
    TERMINAL_ERROR = "terminal_error"
    RETRIES_EXHAUSTED = "retries_exhausted"
    LEASE_EXPIRED = "lease_expired"
    SHED = "shed"
    TIMEOUT = "timeout"


# Text fields: 1 to MAX_KEY_LENGTH characters, no control characters.
Text = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MAX_KEY_LENGTH, pattern=r"^[^\x00-\x1f]*$")
]


class NewItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a producer hands to ``enqueue``.

    ``payload`` is opaque bytes; ``sha256``, when given, must match it. ``max_attempts``
    defaults to the store's retry policy. Higher ``priority`` is leased first.

    The bounds are declared on the fields (``msgspec.Meta``): decoding refuses what is out
    of them, and the intake gate (:func:`validate_new_item`, run by every ``enqueue``)
    checks them with ``policies.check_bounds`` plus what a declaration cannot say (the
    store's payload limit, the checksum, the trace context's entries). Building one in
    Python checks nothing, so the refusal comes from ``enqueue``, with telemetry.
    """

    topic: Annotated[
        str, msgspec.Meta(min_length=1, max_length=MAX_TOPIC_LENGTH, pattern=TOPIC_PATTERN.pattern)
    ]
    payload: bytes
    key: Text | None = None
    priority: Annotated[int, msgspec.Meta(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])] = 0
    idempotency_key: Text | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=MAX_ATTEMPTS_CAP)] | None = None
    sha256: Annotated[str, msgspec.Meta(min_length=64, max_length=64)] | None = None
    correlation_id: Text | None = None
    trace_context: Annotated[dict[str, str], msgspec.Meta(max_length=MAX_TRACE_ENTRIES)] | None = (
        None
    )
    delay_s: Annotated[float, msgspec.Meta(ge=0, le=MAX_DELAY_S)] = 0.0


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


def _text_ok(value: str | None) -> bool:
    return value is None or (type(value) is str and 1 <= len(value) <= MAX_KEY_LENGTH)


def within_declared(item: NewItem) -> bool:
    """A fast test that ``item`` is within its declared bounds.

    ``check_bounds`` reads the declarations generically and costs ~20 us per item, most
    of an enqueue's CPU; this costs ~1 us. It is at least as strict (exact types), so an
    item it passes passes ``check_bounds``; a property test holds the two together.
    """
    low, high = PRIORITY_RANGE
    attempts, sha, delay = item.max_attempts, item.sha256, item.delay_s
    return (
        type(item.topic) is str
        and 1 <= len(item.topic) <= MAX_TOPIC_LENGTH
        and type(item.payload) is bytes
        and _text_ok(item.key)
        and _text_ok(item.idempotency_key)
        and _text_ok(item.correlation_id)
        and type(item.priority) is int
        and low <= item.priority <= high
        and (attempts is None or (type(attempts) is int and 1 <= attempts <= MAX_ATTEMPTS_CAP))
        and (sha is None or (type(sha) is str and len(sha) == 64))
        and (type(delay) is float or type(delay) is int)
        and 0 <= delay <= MAX_DELAY_S
    )


def _check_control(value: str | None, field: str) -> None:
    # The declared pattern says it for decoding; check_bounds does not read patterns.
    if value is not None and any(ord(ch) < 32 for ch in value):
        raise ValidationFailed(f"{field} must not contain control characters", field=field)


def _check_trace_context(context: dict[str, str] | None) -> None:
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

    Its declared bounds are checked by ``policies.check_bounds``, then the payload limit,
    the topic's and texts' characters, the trace context and the checksum.

    Raises:
        ValidationFailed: a field is of the wrong type or outside its bounds (``field``
            names it).
        PayloadTooLarge: the payload is over ``max_payload_bytes``.
        ChecksumMismatch: ``item.sha256`` does not match the payload.
    """
    payload = item.payload
    if isinstance(payload, bytearray | memoryview):
        # Accepted as bytes (and stored as bytes); the declaration says bytes.
        payload = bytes(payload)
        item = msgspec.structs.replace(item, payload=payload)
    if isinstance(item.topic, str) and not TOPIC_PATTERN.fullmatch(item.topic):
        # fullmatch, not match: the pattern's ``$`` also matches before a trailing newline.
        raise ValidationFailed(
            f"topic {item.topic!r} is not valid: use 1-200 of A-Z a-z 0-9 . _ : / - "
            "starting with a letter or digit",
            field="topic",
        )
    if isinstance(item.sha256, str) and not _HEX_DIGEST.fullmatch(item.sha256):
        raise ValidationFailed("sha256 must be 64 hex digits", field="sha256")
    if not within_declared(item):
        check_bounds(item)  # raises, naming the field (or finds a subclass it accepts)
    if len(payload) > max_payload_bytes:
        raise PayloadTooLarge(
            f"payload is {len(payload)} bytes, over the limit of {max_payload_bytes}",
            field="payload",
        )
    for field in ("key", "idempotency_key", "correlation_id"):
        _check_control(getattr(item, field), field)
    _check_trace_context(item.trace_context)
    digest = payload_digest(payload)
    if item.sha256 is not None:
        supplied = item.sha256.lower()
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
