"""The in-memory reference backend: the backend protocol in plain Python structures.

It proves the seam is neutral (it passes the same conformance suite as SQLite) and gives
tests and demos a store with no file. Each primitive runs without awaiting between its
first read and its last write, so on one event loop it is a transaction; decisions are
all taken before anything is applied, so a refusal changes nothing. Nothing survives the
process. The database is bounded by ``max_rows`` (items plus audit rows): a write past
it raises ``StoreFull`` and changes nothing, like SQLite's ``max_page_count``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import anyio.lowlevel
import msgspec

from policies import RetentionCutoffs
from runtime._errors import StoreFull, StoreUnavailable
from runtime.store import _memory_db as mdb
from runtime.store import _rules as rules
from runtime.store._backend import (
    Admitted,
    ById,
    Changed,
    DeadLetterQuery,
    Decide,
    EventQuery,
    Expired,
    Pick,
    PurgeTarget,
)
from runtime.store._envelope import DeadLetter, ItemState, WorkItem, new_id
from runtime.store._memory_db import Dead, MemoryDatabase
from runtime.store._records import AuditEvent, EnqueueResult, PurgeResult, QueueMetrics


class MemoryBackend:
    """The :class:`~runtime.store._backend.Backend` of one queue of a :class:`MemoryDatabase`."""

    def __init__(self, db: MemoryDatabase, queue: str, clock: Callable[[], float]) -> None:
        self.db = db
        self.queue = queue
        self._clock = clock
        self._closed = False

    def depth_now(self) -> dict[str, int]:
        """Unfinished items by state (a copy of counters; safe from any thread)."""
        counts = self.db.counts[self.queue]
        return {s.value: counts[s] for s in rules.UNFINISHED}

    def close(self) -> None:
        """Refuse further calls (the database stays)."""
        self._closed = True

    async def aclose(self) -> None:
        """Refuse further calls (the database stays)."""
        self.close()
        await anyio.lowlevel.checkpoint()

    async def _begin(self, rows: int = 0) -> float:
        # Cancellation is taken here, before anything changed; then the call runs whole.
        await anyio.lowlevel.checkpoint()
        if self._closed:
            raise StoreUnavailable("the store is closed")
        self._room(rows)
        return self._clock()

    def _room(self, rows: int) -> None:
        """Refuse a write of up to ``rows`` new rows that would pass the bound."""
        if len(self.db.items) + len(self.db.audit) + rows > self.db.max_rows:
            raise StoreFull(f"the in-memory database is at its bound of {self.db.max_rows} rows")

    # -- row keeping -------------------------------------------------------------------

    def _put(self, item: WorkItem) -> None:
        old = self.db.items.get(item.id)
        if old is not None:
            self.db.counts[old.queue][old.state] -= 1
        self.db.items[item.id] = item
        self.db.counts[item.queue][item.state] += 1

    def _delete(self, item_id: str) -> None:
        item = self.db.items.pop(item_id)
        self.db.counts[item.queue][item.state] -= 1
        self.db.finished_at.pop(item_id, None)
        self.db.dead.pop(item_id, None)
        if item.idempotency_key is not None:
            self.db.keys.pop((item.queue, item.idempotency_key), None)
        for child in self.db.replays.pop(item_id, []):
            if child in self.db.items:  # a replay outlives its dead letter, unlinked
                self._put(msgspec.structs.replace(self.db.items[child], replay_of=None))

    def _audit(
        self,
        now: float,
        kind: str,
        item: WorkItem | None = None,
        to_state: str | None = None,
        *,
        error: str | None = None,
        detail: dict[str, object] | None = None,
        attempt: int | None = None,
        wait_s: float | None = None,
        fresh: bool = False,
    ) -> None:
        event = AuditEvent(
            id=next(self.db.audit_ids),
            at=now,
            kind=kind,
            queue=self.queue if item is None else item.queue,
            item_id=None if item is None else item.id,
            topic=None if item is None else item.topic,
            from_state=None if item is None or fresh else item.state.value,
            to_state=to_state,
            attempt=attempt if attempt is not None else (None if item is None else item.attempt),
            max_attempts=None if item is None else item.max_attempts,
            error=error,
            detail=None if detail is None else msgspec.json.encode(detail).decode(),
        )
        self.db.audit.append((event, wait_s))

    def _apply(self, now: float, item: WorkItem, change: rules.Transition) -> None:
        if change.to_state is None:
            self._delete(item.id)
        else:
            self._put(rules.applied(item, change, now))
            if change.to_state in rules.FINISHED:
                self.db.finished_at[item.id] = now
        if change.dead_reason is not None:
            self.db.dead[item.id] = Dead(
                change.dead_reason, change.error, change.traceback, item.attempt, now
            )
        if change.to_state is ItemState.ARCHIVED:
            self.db.dead[item.id].archived_at = now
        to = None if change.to_state is None else change.to_state.value
        self._audit(now, change.kind, item, to, error=change.error, detail=change.detail)

    def _decide_all(self, now: float, picked: Sequence[WorkItem], decide: Decide) -> list[Changed]:
        changed = [(item, decide(item, now)) for item in picked]  # all decided, then applied
        for item, change in changed:
            self._apply(now, item, change)
        return changed

    def _pick(self, now: float, pick: Pick) -> list[WorkItem]:
        if isinstance(pick, ById):
            item = self.db.items.get(pick.item_id)
            if item is None:
                raise rules.missing(pick.item_id, dead_letter=pick.dead_letter)
            return [item]
        if isinstance(pick, Expired):
            expired = [
                i
                for i in mdb.rows(self.db, self.queue, (ItemState.LEASED,))
                if (i.lease_expires_at or 0.0) <= now
            ]
            return sorted(expired, key=lambda i: i.lease_expires_at or 0.0)[: pick.limit]
        return sorted(mdb.rows(self.db, self.queue, rules.LEASABLE), key=rules.shed_order)[
            : pick.limit
        ]

    # -- writes ------------------------------------------------------------------------

    async def enqueue(self, items: Sequence[Admitted]) -> list[EnqueueResult]:
        """See ``Backend.enqueue``."""
        now = await self._begin(2 * len(items))
        results = []
        for admitted in items:
            item, key = admitted.item, admitted.item.idempotency_key
            found = None if key is None else self.db.keys.get((self.queue, key))
            if found is not None:
                results.append(EnqueueResult(id=found, created=False))
                continue
            item_id = new_id()
            row = WorkItem(
                id=item_id,
                seq=next(self.db.seq),
                queue=self.queue,
                topic=item.topic,
                key=item.key,
                priority=item.priority,
                payload=bytes(item.payload),
                sha256=admitted.sha256,
                idempotency_key=key,
                state=ItemState.ENQUEUED,
                attempt=0,
                max_attempts=admitted.max_attempts,
                created_at=now,
                available_at=now + item.delay_s,
                updated_at=now,
                correlation_id=item.correlation_id or item_id,
                trace_context=None if item.trace_context is None else dict(item.trace_context),
                last_error=None,
                lease_owner=None,
                lease_token=None,
                lease_expires_at=None,
                replay_of=None,
            )
            self._put(row)
            if key is not None:
                self.db.keys[(self.queue, key)] = item_id
            self._audit(now, "enqueued", row, "enqueued", fresh=True)
            results.append(EnqueueResult(id=item_id, created=True))
        return results

    async def lease(
        self, owner: str, n: int, lease_s: float, topics: Sequence[str] | None, reclaim: int
    ) -> tuple[list[WorkItem], list[Changed]]:
        """See ``Backend.lease``."""
        now = await self._begin()
        expired = self._pick(now, Expired(reclaim))
        self._room(len(expired) + n)  # an audit row each
        reclaimed = self._decide_all(now, expired, rules.decide_expired)
        wanted = None if topics is None else set(topics)
        ready = [
            i
            for i in mdb.rows(self.db, self.queue, rules.LEASABLE)
            if i.available_at <= now and (wanted is None or i.topic in wanted)
        ]
        leased = []
        for item in sorted(ready, key=rules.lease_order)[:n]:
            self._audit(
                now,
                "leased",
                item,
                "leased",
                attempt=item.attempt + 1,
                detail={"owner": owner},
                wait_s=max(0.0, now - item.available_at),
            )
            row = rules.leased(item, now, owner, os.urandom(16).hex(), lease_s)
            self._put(row)
            leased.append(row)
        return leased, reclaimed

    def _fenced(self, item_id: str, token: str) -> rules.Refusal | None:
        return rules.lease_refusal(self.db.items.get(item_id), item_id, token)

    async def extend(
        self, leases: Sequence[tuple[str, str]], lease_s: float
    ) -> list[float | rules.Refusal]:
        """See ``Backend.extend``."""
        now = await self._begin()
        refusals = [self._fenced(item_id, token) for item_id, token in leases]
        for (item_id, _), refusal in zip(leases, refusals, strict=True):
            if refusal is None:
                self._put(rules.extended(self.db.items[item_id], now, lease_s))
        return [now + lease_s if r is None else r for r in refusals]

    async def ack(
        self, leases: Sequence[tuple[str, str]], effects: Mapping[str, Sequence[str]] | None
    ) -> list[rules.Refusal | None]:
        """See ``Backend.ack``."""
        now = await self._begin(len(leases))
        outcomes: list[rules.Refusal | None] = []
        for item_id, token in leases:
            refusal = self._fenced(item_id, token)
            outcomes.append(refusal)
            if refusal is None:
                item = self.db.items[item_id]
                self._apply(now, item, rules.decide_ack(item, now, token=token))
                for key in (effects or {}).get(item_id, ()):
                    self.db.effects.setdefault(key, item_id)
        return outcomes

    async def transition(self, pick: Pick, decide: Decide) -> list[Changed]:
        """See ``Backend.transition``."""
        now = await self._begin()
        picked = self._pick(now, pick)
        self._room(len(picked))
        return self._decide_all(now, picked, decide)

    async def replay(self, item_id: str, force: bool, extra_trace: dict[str, str] | None) -> str:
        """See ``Backend.replay``."""
        now = await self._begin(3)
        item, dead = self.db.items.get(item_id), self.db.dead.get(item_id)
        if item is None or dead is None:
            raise rules.missing(item_id, dead_letter=True)
        refusal = rules.replay_refusal(item_id, item.state, dead.replay_count, force=force)
        if refusal is not None:
            raise refusal
        new = rules.replay_copy(item, new_id(), now, extra_trace)
        new = msgspec.structs.replace(new, seq=next(self.db.seq))
        self._put(new)
        self.db.replays[item_id].append(new.id)
        dead.replay_count += 1
        dead.replayed_at, dead.replayed_item_id = now, new.id
        detail: dict[str, object] = {"replayed_item_id": new.id, "forced": force}
        self._audit(now, "replayed", item, item.state.value, detail=detail)
        self._audit(now, "enqueued", new, "enqueued", detail={"replay_of": item.id}, fresh=True)
        return new.id

    async def purge(self, target: PurgeTarget, before: float, limit: int) -> int:
        """See ``Backend.purge``."""
        now = await self._begin(1)
        if target is PurgeTarget.AUDIT:
            kept = [a for a in self.db.audit if a[0].queue != self.queue or a[0].at >= before]
            count = len(self.db.audit) - len(kept)
            self.db.audit = kept
            if count:
                self._audit(now, "audit_purged", detail={"count": count})
            return count
        ids = [i.id for i in self._purgeable(target, before)][:limit]
        for item_id in ids:
            self._delete(item_id)
        if ids:
            kind = "succeeded_purged" if target is PurgeTarget.SUCCEEDED else "dead_letters_purged"
            self._audit(now, kind, detail={"count": len(ids), "first_ids": ids[:20]})
        return len(ids)

    def _purgeable(self, target: PurgeTarget, before: float) -> list[WorkItem]:
        if target is PurgeTarget.SUCCEEDED:
            done = self.db.finished_at
            return [
                i
                for i in mdb.rows(self.db, self.queue, (ItemState.SUCCEEDED,))
                if done[i.id] < before
            ]
        states = {
            PurgeTarget.ARCHIVED: (ItemState.ARCHIVED,),
            PurgeTarget.LIVE_DEAD_LETTERS: (ItemState.DEAD_LETTERED,),
        }.get(target, (ItemState.ARCHIVED, ItemState.DEAD_LETTERED))
        dead = self.db.dead
        return [
            i
            for i in mdb.rows(self.db, self.queue, states)
            if (dead[i.id].archived_at or dead[i.id].dead_at) < before
        ]

    async def record_event(self, kind: str, detail: dict[str, object]) -> None:
        """See ``Backend.record_event``."""
        self._audit(await self._begin(1), kind, detail=detail)

    async def record_effect(self, effect_key: str, item_id: str) -> bool:
        """See ``Backend.record_effect``."""
        await self._begin()
        if effect_key in self.db.effects:
            return False
        self.db.effects[effect_key] = item_id
        return True

    async def save_checkpoint(self, name: str, state: bytes) -> None:
        """See ``Backend.save_checkpoint``."""
        await self._begin()
        self.db.checkpoints[name] = bytes(state)

    # -- reads -------------------------------------------------------------------------

    async def get(self, item_id: str) -> WorkItem:
        """See ``Backend.get``."""
        await self._begin()
        item = self.db.items.get(item_id)
        if item is None:
            raise rules.missing(item_id)
        return item

    async def items(self, state: ItemState | None, limit: int) -> list[WorkItem]:
        """See ``Backend.items``."""
        await self._begin()
        return mdb.rows(self.db, self.queue, None if state is None else (state,))[:limit]

    async def dead_letter(self, item_id: str) -> DeadLetter:
        """See ``Backend.dead_letter``."""
        await self._begin()
        return mdb.dead_letter(self.db, item_id)

    async def dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]:
        """See ``Backend.dead_letters``."""
        await self._begin()
        return mdb.dead_letters(self.db, self.queue, query)

    async def events(self, query: EventQuery) -> list[AuditEvent]:
        """See ``Backend.events``."""
        await self._begin()
        return mdb.events(self.db, self.queue, query)

    async def depth(self) -> dict[str, int]:
        """See ``Backend.depth``."""
        await self._begin()
        return self.depth_now()

    async def metrics(self, now: float, since_s: float) -> QueueMetrics:
        """See ``Backend.metrics``."""
        await self._begin()
        return mdb.metrics(self.db, self.queue, now, since_s)

    async def retention_counts(self, cut: RetentionCutoffs) -> PurgeResult:
        """See ``Backend.retention_counts``."""
        await self._begin()
        return mdb.retention_counts(self.db, self.queue, cut)

    async def has_effect(self, effect_key: str) -> bool:
        """See ``Backend.has_effect``."""
        await self._begin()
        return effect_key in self.db.effects

    async def load_checkpoint(self, name: str) -> bytes | None:
        """See ``Backend.load_checkpoint``."""
        await self._begin()
        return self.db.checkpoints.get(name)

    def reclaim_now(self) -> None:
        """Reclaim every expired lease at once (blocking; a store does it on opening)."""
        now = self._clock()
        self._decide_all(now, self._pick(now, Expired(len(self.db.items))), rules.decide_expired)
