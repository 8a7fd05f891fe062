"""The in-memory database of the reference backend, and its read queries.

The queries are plain functions of the database and a queue name, so the backend's
read primitives are one line each and the figures are computed in one place.
"""

from __future__ import annotations

import collections
import itertools

import msgspec

from policies import RetentionCutoffs
from runtime.store import _rules as rules
from runtime.store._backend import DeadLetterQuery, EventQuery
from runtime.store._envelope import DeadLetter, DeadReason, ItemState, WorkItem
from runtime.store._records import AuditEvent, PurgeResult, QueueMetrics

#: Audit kinds counted in the metrics window (as the SQLite backend counts them).
_COUNTED = ("enqueued", "leased", "succeeded", "retry_scheduled", "dead_lettered", "lease_expired")


class Dead(msgspec.Struct):
    """The dead-letter record of an item (its row holds the rest)."""

    reason: DeadReason
    error: str | None
    traceback: str | None
    attempts: int
    dead_at: float
    archived_at: float | None = None
    replay_count: int = 0
    replayed_at: float | None = None
    replayed_item_id: str | None = None


class MemoryDatabase:
    """What a file is to SQLite: the state that store handles (one per queue) share.

    Open handles on it with ``MemoryStore.open(database=...)``; it lives as long as
    something refers to it.
    """

    def __init__(self, max_rows: int = 1_000_000) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be positive")
        self.max_rows = max_rows
        self.items: dict[str, WorkItem] = {}
        self.finished_at: dict[str, float] = {}
        self.dead: dict[str, Dead] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.replays: dict[str, list[str]] = collections.defaultdict(list)
        self.audit: list[tuple[AuditEvent, float | None]] = []
        self.effects: dict[str, str] = {}
        self.checkpoints: dict[str, bytes] = {}
        # Per queue and state; read by the depth gauge's thread, so never a scan.
        self.counts: dict[str, dict[ItemState, int]] = collections.defaultdict(
            lambda: dict.fromkeys(ItemState, 0)
        )
        self.seq = itertools.count(1)
        self.audit_ids = itertools.count(1)


def rows(
    db: MemoryDatabase, queue: str, states: tuple[ItemState, ...] | None = None
) -> list[WorkItem]:
    """Items of ``queue`` (of ``states`` when given) in sequence order."""
    return sorted(
        (
            i
            for i in db.items.values()
            if i.queue == queue and (states is None or i.state in states)
        ),
        key=lambda i: i.seq,
    )


def dead_letter(db: MemoryDatabase, item_id: str) -> DeadLetter:
    """The dead letter of item ``item_id``."""
    item, dead = db.items.get(item_id), db.dead.get(item_id)
    if item is None or dead is None:
        raise rules.missing(item_id, dead_letter=True)
    return DeadLetter(
        item_id=item.id,
        queue=item.queue,
        topic=item.topic,
        key=item.key,
        priority=item.priority,
        reason=dead.reason,
        error=dead.error,
        traceback=dead.traceback,
        attempts=dead.attempts,
        max_attempts=item.max_attempts,
        payload_sha256=item.sha256,
        payload_size=len(item.payload),
        correlation_id=item.correlation_id,
        dead_at=dead.dead_at,
        archived_at=dead.archived_at,
        replay_count=dead.replay_count,
        replayed_at=dead.replayed_at,
        replayed_item_id=dead.replayed_item_id,
    )


def dead_letters(db: MemoryDatabase, queue: str, query: DeadLetterQuery) -> list[DeadLetter]:
    """Dead letters, oldest first, filtered."""
    states: tuple[ItemState, ...] = (ItemState.DEAD_LETTERED,)
    if query.include_archived:
        states += (ItemState.ARCHIVED,)
    found = [dead_letter(db, i.id) for i in rows(db, queue, states)]
    found = [
        d
        for d in found
        if (query.topic is None or d.topic == query.topic)
        and (query.reason is None or d.reason == query.reason)
        and (query.since is None or d.dead_at >= query.since)
        and (query.until is None or d.dead_at < query.until)
    ]
    return sorted(found, key=lambda d: d.dead_at)[: query.limit]


def events(db: MemoryDatabase, queue: str, query: EventQuery) -> list[AuditEvent]:
    """Audit rows of ``queue``, oldest first, filtered."""
    found = [
        e
        for e, _ in db.audit
        if e.queue == queue
        and (query.item_id is None or e.item_id == query.item_id)
        and (query.topic is None or e.topic == query.topic)
        and (query.kind is None or e.kind == query.kind)
        and (query.since is None or e.at >= query.since)
    ]
    return found[: query.limit]


def metrics(db: MemoryDatabase, queue: str, now: float, since_s: float) -> QueueMetrics:
    """Depth by state and the rates of the window ``[now - since_s, now]``."""
    start = now - since_s
    counts: collections.Counter[str] = collections.Counter()
    waits: list[float] = []
    for event, wait_s in db.audit:
        if event.queue == queue and start <= event.at <= now and event.kind in _COUNTED:
            counts[event.kind] += 1
            if event.kind == "leased" and wait_s is not None:
                waits.append(wait_s)
    last_success: dict[str, float] = {}
    for item in rows(db, queue, (ItemState.SUCCEEDED,)):
        at = db.finished_at[item.id]
        last_success[item.topic] = max(at, last_success.get(item.topic, at))
    by_reason = collections.Counter(
        d.reason.value
        for item_id, d in db.dead.items()
        if db.items[item_id].queue == queue and start <= d.dead_at <= now
    )
    return QueueMetrics(
        queue=queue,
        now=now,
        since_s=since_s,
        depth={s.value: n for s, n in db.counts[queue].items()},
        enqueued=counts["enqueued"],
        succeeded=counts["succeeded"],
        throughput_per_min=counts["succeeded"] * 60.0 / since_s,
        avg_queue_latency_s=sum(waits) / len(waits) if waits else None,
        lease_contention=0,
        retries=counts["retry_scheduled"],
        dead_letters=counts["dead_lettered"],
        lease_expirations=counts["lease_expired"],
        last_success=last_success,
        dead_letters_by_reason=dict(by_reason),
    )


def retention_counts(db: MemoryDatabase, queue: str, cut: RetentionCutoffs) -> PurgeResult:
    """What a retention purge at these cut-offs would delete (a dry run)."""
    succeeded = dead = audit = 0
    if cut.succeeded_before is not None:
        done = rows(db, queue, (ItemState.SUCCEEDED,))
        succeeded = sum(db.finished_at[i.id] < cut.succeeded_before for i in done)
    for before, state, stamp in (
        (cut.archived_before, ItemState.ARCHIVED, "archived_at"),
        (cut.dead_letters_before, ItemState.DEAD_LETTERED, "dead_at"),
    ):
        if before is not None:
            for i in rows(db, queue, (state,)):
                at = getattr(db.dead[i.id], stamp)
                dead += at is not None and at < before
    if cut.audit_before is not None:
        audit = sum(e.queue == queue and e.at < cut.audit_before for e, _ in db.audit)
    return PurgeResult(succeeded=succeeded, dead_letters=dead, audit=audit, dry_run=True)
