"""The records the store returns: enqueue results, fail outcomes, audit rows, figures."""

from __future__ import annotations

import msgspec

from runtime.store._envelope import DeadReason, ItemState


class EnqueueResult(msgspec.Struct, frozen=True):
    """The id of an enqueued item; ``created`` is False when an idempotency key matched."""

    id: str
    created: bool


class FailOutcome(msgspec.Struct, frozen=True):
    """What became of a failed item: retried after ``delay_s``, or dead-lettered."""

    state: ItemState
    delay_s: float
    reason: DeadReason | None


class AuditEvent(msgspec.Struct, frozen=True):
    """One row of the audit trail."""

    id: int
    at: float
    kind: str
    queue: str
    item_id: str | None
    topic: str | None
    from_state: str | None
    to_state: str | None
    attempt: int | None
    max_attempts: int | None
    error: str | None
    detail: str | None


class PurgeResult(msgspec.Struct, frozen=True):
    """Rows removed by a retention purge (or that would be, on a dry run)."""

    succeeded: int
    dead_letters: int
    audit: int
    dry_run: bool = False


class QueueMetrics(msgspec.Struct, frozen=True):
    """Queue figures over a window of ``since_s`` seconds ending at ``now``.

    ``depth`` counts every state (current, not windowed); rates and counts are windowed.
    """

    queue: str
    now: float
    since_s: float
    depth: dict[str, int]
    enqueued: int
    succeeded: int
    throughput_per_min: float
    avg_queue_latency_s: float | None
    lease_contention: int
    retries: int
    dead_letters: int
    lease_expirations: int
    last_success: dict[str, float]
    dead_letters_by_reason: dict[str, int] = {}
