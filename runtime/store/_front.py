"""The store front end: policy over a backend of transactional primitives.

Validation and bounds, telemetry, retry decisions, the ready mark and the purge loops
live here, once, whatever the backend (``_backend.Backend``) underneath.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Mapping, Sequence

from policies import RetentionPolicy
from runtime._errors import ItemNotFound, StaleLease, ValidationFailed
from runtime.store import _rules as rules
from runtime.store._backend import (
    Admitted,
    ById,
    Changed,
    DeadLetterQuery,
    Expired,
    PurgeTarget,
    Sheddable,
)
from runtime.store._envelope import (
    DeadLetter,
    DeadReason,
    Failure,
    ItemState,
    NewItem,
    WorkItem,
    validate_new_item,
)
from runtime.store._front_base import StoreBase
from runtime.store._records import EnqueueResult, FailOutcome, PurgeResult
from runtime.telemetry import (
    dead_letter_written,
    enqueue_span,
    item_rejected,
    items_enqueued,
    replay_span,
    settle_span,
)

#: Rows one purge transaction deletes at most, per ``max_batch`` of the config.
_PURGE_BATCHES = 100


class QueueStore(StoreBase):
    """A durable queue with leases, retries, dead letters and an audit trail, over a
    :class:`~runtime.store._backend.Backend`.

    Every method is async and cancellation-safe: a write that has started completes even
    if the caller is cancelled (the cancellation is delivered afterwards). Refusals raise
    typed errors and change nothing. Open a concrete store with :func:`open_store`.
    """

    # -- readiness ---------------------------------------------------------------------

    def ready_mark(self) -> int:
        """A counter that moves whenever an operation of this store object made items
        ready to lease (enqueue, replay, a reclaim, a retry due at once).

        Take it *before* a lease that comes back empty, then ``wait_ready(mark, ...)``: an
        enqueue between the two is not missed. Writes by other processes do not move it.
        """
        return self._ready.mark()

    async def wait_ready(self, mark: int, timeout_s: float) -> None:
        """Return as soon as :meth:`ready_mark` differs from ``mark``, or after
        ``timeout_s`` seconds, whichever comes first. Any number of tasks may wait.

        It waits on an event (no polling). A cancelled wait raises the cancellation and
        changes nothing.

        Raises:
            ValidationFailed: ``timeout_s`` is negative or not a number.
        """
        await self._ready.wait(mark, timeout_s)

    # -- intake ------------------------------------------------------------------------

    async def enqueue(self, item: NewItem) -> EnqueueResult:
        """Add one item; an already known idempotency key returns the existing id.

        Raises:
            ValidationFailed: (and subclasses) the item was refused; nothing was written.
        """
        return (await self.enqueue_many([item]))[0]

    async def enqueue_many(self, items: Sequence[NewItem]) -> list[EnqueueResult]:
        """Add many items in one transaction: all of them, or (on a refusal) none.

        Raises:
            ValidationFailed: an item was refused (its index is in the message).
        """
        backend = self._open()
        digests: list[str] = []
        limit = self.config.max_payload_bytes
        for index, item in enumerate(items):
            try:
                digests.append(validate_new_item(item, max_payload_bytes=limit))
            except ValidationFailed as exc:
                item_rejected(str(getattr(item, "topic", "")), type(exc).__name__)
                if len(items) > 1:
                    exc.args = (f"item {index}: {exc.args[0]}",)
                raise
        if not digests:
            return []
        attempts = self.config.retry.max_attempts
        # The send span's W3C context goes into each item's envelope (unless the caller
        # set one), so its process span links back here from any process, after restarts.
        with enqueue_span(items) as traced:
            admitted = [
                Admitted(item, digest, item.max_attempts or attempts)
                for item, digest in zip(traced, digests, strict=True)
            ]
            results = await backend.enqueue(admitted)
        counts = collections.Counter(
            a.item.topic for a, r in zip(admitted, results, strict=True) if r.created
        )
        for topic, n in counts.items():
            items_enqueued(topic, n)
        if any(r.created and not a.item.delay_s for a, r in zip(admitted, results, strict=True)):
            self._ready.move()
        return results

    # -- the lease cycle ---------------------------------------------------------------

    def _check_lease_s(self, lease_s: float) -> None:
        if not 0 < lease_s <= self.config.max_lease_s:
            raise ValidationFailed(
                f"lease_s must be within (0, {self.config.max_lease_s:g}]", field="lease_s"
            )

    async def lease(
        self,
        owner: str,
        n: int = 1,
        lease_s: float = 30.0,
        topics: Sequence[str] | None = None,
    ) -> list[WorkItem]:
        """Lease up to ``n`` ready items for ``lease_s`` seconds (fewer if fewer are ready),
        highest priority first, then oldest. Expired leases are reclaimed first.

        Each carries a fresh ``lease_token`` that heartbeat, ack and fail must present.

        Raises:
            ValidationFailed: ``n`` or ``lease_s`` outside the configured bounds.
        """
        backend = self._open()
        cap = self.config.max_lease_batch
        if not 1 <= n <= cap:
            raise ValidationFailed(f"n must be within [1, {cap}]", field="n")
        self._check_lease_s(lease_s)
        picked = list(topics) if topics else None
        leased, reclaimed = await backend.lease(owner, n, lease_s, picked, cap)
        self._after_reclaim(reclaimed, leased=len(leased))
        return leased

    async def heartbeat(self, item_id: str, token: str, lease_s: float = 30.0) -> float:
        """Extend a lease by ``lease_s`` from now; return the new expiry.

        Raises:
            StaleLease: the token is not the item's current lease.
            ItemNotFound: no such item.
            ValidationFailed: ``lease_s`` outside the configured bounds.
        """
        self._check_lease_s(lease_s)
        (outcome,) = await self._open().extend([(item_id, token)], lease_s)
        if isinstance(outcome, StaleLease | ItemNotFound):
            raise outcome
        return outcome

    async def heartbeat_many(
        self, leases: Sequence[tuple[str, str]], lease_s: float = 30.0
    ) -> list[StaleLease | ItemNotFound | None]:
        """Extend many ``(item_id, token)`` leases by ``lease_s`` from now, in one transaction.

        Returns one entry per lease: None when extended, else the error that refused it
        (a stale lease does not stop the others).

        Raises:
            ValidationFailed: ``lease_s`` outside the configured bounds (nothing written).
        """
        backend = self._open()
        self._check_lease_s(lease_s)
        batch = list(leases)
        if not batch:
            return []
        outcomes = await backend.extend(batch, lease_s)
        return [None if isinstance(o, float | int) else o for o in outcomes]

    async def ack(self, item_id: str, token: str, *, effects: Sequence[str] = ()) -> None:
        """Mark a leased item succeeded; ``effects`` (effects-ledger keys of what it
        delivered) are recorded in the same transaction.

        Raises:
            StaleLease: the lease expired and the item was reclaimed or leased again
                (nothing is recorded then).
            ItemNotFound: no such item.
        """
        backend = self._open()
        with settle_span("ack", item_id=item_id):
            (error,) = await backend.ack([(item_id, token)], {item_id: tuple(effects)})
        if error is not None:
            raise error

    async def ack_many(
        self,
        leases: Sequence[tuple[str, str]],
        *,
        effects: Mapping[str, Sequence[str]] | None = None,
        contexts: Sequence[Mapping[str, str] | None] | None = None,
    ) -> list[StaleLease | ItemNotFound | None]:
        """Acknowledge many ``(item_id, token)`` leases in one transaction.

        ``effects`` maps item ids to effects-ledger keys recorded with their ack.
        ``contexts`` are the items' trace contexts (``WorkItem.trace_context``): the batch's
        ``ack`` span links to them, so it is traced with the journeys it settles and
        dropped with them (at most ``MAX_SETTLE_LINKS`` links, sampled ones first). Returns
        one entry per lease: None when acknowledged, else the error that refused it (a
        stale lease does not stop the others, and its effects are not recorded).
        """
        backend = self._open()
        batch = list(leases)
        if not batch:
            return []
        first = batch[0][0] if len(batch) == 1 else None
        with settle_span("ack", count=len(batch), item_id=first, contexts=contexts):
            return await backend.ack(batch, effects)

    async def fail(self, item_id: str, token: str, failure: Failure) -> FailOutcome:
        """Record a failed attempt; the retry policy decides retry or dead letter.

        Raises:
            StaleLease: the lease is no longer this caller's.
            ItemNotFound: no such item.
        """
        backend = self._open()
        facts = rules.FailFacts(token, failure, self.config.retry, self._rand())
        decide = functools.partial(rules.decide_fail, facts=facts)
        with settle_span("nack", item_id=item_id):
            ((item, done),) = await backend.transition(ById(item_id), decide)
        if done.dead_reason is not None:
            _report_dead(item, done.dead_reason, failure.error_type)
            return FailOutcome(state=ItemState.DEAD_LETTERED, delay_s=0.0, reason=done.dead_reason)
        if done.delay_s <= 0:
            self._ready.move()
        return FailOutcome(state=ItemState.RETRY_SCHEDULED, delay_s=done.delay_s, reason=None)

    async def dead_letter(self, item_id: str, reason: DeadReason, error: str) -> None:
        """Dead-letter a waiting or leased item at once (shedding, validation).

        Raises:
            InvalidTransition: the item is already finished.
            ItemNotFound: no such item.
        """
        why = DeadReason(reason)
        decide = functools.partial(rules.decide_dead_letter, reason=why, error=error)
        ((item, _),) = await self._open().transition(ById(item_id), decide)
        _report_dead(item, why, None)

    async def shed(self, n: int, *, dead_letter: bool = True) -> list[str]:
        """Shed up to ``n`` waiting items, lowest priority (then newest) first; return ids.

        With ``dead_letter`` they become dead letters with reason ``shed``; otherwise they
        are dropped. Each is audited. At most ``max_lease_batch`` per call.
        """
        if n <= 0:
            return []
        pick = Sheddable(min(n, self.config.max_lease_batch))
        decide = functools.partial(rules.decide_shed, dead_letter=dead_letter)
        changed = await self._open().transition(pick, decide)
        for item, done in changed:
            if done.dead_reason is not None:
                _report_dead(item, done.dead_reason, None)
        return [item.id for item, _ in changed]

    async def reclaim_expired(self, limit: int | None = None) -> int:
        """Return expired leases to the queue (or dead-letter them when out of attempts);
        return how many. At most ``limit`` (default ``max_lease_batch``) per call."""
        pick = Expired(limit or self.config.max_lease_batch)
        changed = await self._open().transition(pick, rules.decide_expired)
        self._after_reclaim(changed)
        return len(changed)

    def _after_reclaim(self, changed: list[Changed], *, leased: int = 0) -> None:
        requeued = 0
        for item, done in changed:
            if done.dead_reason is not None:
                _report_dead(item, done.dead_reason, None)
            else:
                requeued += 1
        if requeued > leased:  # some reclaimed items are still waiting for a consumer
            self._ready.move()

    # -- dead letters ------------------------------------------------------------------

    async def dead_letters(
        self,
        *,
        topic: str | None = None,
        reason: DeadReason | str | None = None,
        since: float | None = None,
        until: float | None = None,
        include_archived: bool = False,
        limit: int | None = None,
    ) -> list[DeadLetter]:
        """Dead letters, oldest first (at most ``limit`` or the configured list limit)."""
        why = None if reason is None else DeadReason(reason)
        query = DeadLetterQuery(self._cap(limit), topic, why, since, until, include_archived)
        return await self._open().dead_letters(query)

    async def get_dead_letter(self, item_id: str) -> DeadLetter:
        """One dead letter. Raises ItemNotFound."""
        return await self._open().dead_letter(item_id)

    async def replay(self, item_id: str, *, force: bool = False) -> str:
        """Enqueue a dead letter again as a new linked item; return the new id.

        Raises:
            ReplayRefused: it was replayed before and ``force`` is False.
            InvalidTransition: it is archived.
            ItemNotFound: no such dead letter.
        """
        backend = self._open()
        try:
            dead: WorkItem | None = await backend.get(item_id)
        except ItemNotFound:
            dead = None  # the write below raises the precise error
        with replay_span(
            item_id,
            topic=None if dead is None else dead.topic,
            trace_context=None if dead is None else dead.trace_context,
            forced=force,
        ) as recorder:
            new = await backend.replay(item_id, force, recorder.trace_context() or None)
            recorder.replayed(new)
        self._ready.move()
        if dead is not None:
            items_enqueued(dead.topic)
        return new

    async def archive(self, item_id: str) -> None:
        """Archive a dead letter. Raises ItemNotFound or InvalidTransition."""
        await self._open().transition(ById(item_id, dead_letter=True), rules.decide_archive)

    async def _purge_all(self, target: PurgeTarget, before: float) -> int:
        cap, total = self.config.max_batch * _PURGE_BATCHES, 0
        while True:
            done = await self._open().purge(target, before, cap)
            total += done
            if done < cap:
                return total

    async def purge_dead_letters(
        self, older_than_s: float = 0.0, *, include_live: bool = False
    ) -> int:
        """Delete archived dead letters (and live ones with ``include_live``) older than
        ``older_than_s``; return how many. Bounded transactions; each purge is audited."""
        target = PurgeTarget.DEAD_LETTERS if include_live else PurgeTarget.ARCHIVED
        return await self._purge_all(target, self._clock() - older_than_s)

    async def purge(
        self, policy: RetentionPolicy | None = None, *, dry_run: bool = False
    ) -> PurgeResult:
        """Retention purge: succeeded items, archived dead letters and old audit rows.

        With ``dry_run`` nothing is deleted; the counts say what would be.
        """
        policy = policy or self.config.retention
        cut = policy.cutoffs(self._clock())
        if dry_run:
            return await self._open().retention_counts(cut)
        succeeded = dead = audit = 0
        if cut.succeeded_before is not None:
            succeeded = await self._purge_all(PurgeTarget.SUCCEEDED, cut.succeeded_before)
        if cut.archived_before is not None:
            dead = await self._purge_all(PurgeTarget.ARCHIVED, cut.archived_before)
        if cut.dead_letters_before is not None:
            # Live ones only: archived rows are ``archived_s``'s (None keeps them forever).
            dead += await self._purge_all(PurgeTarget.LIVE_DEAD_LETTERS, cut.dead_letters_before)
        if cut.audit_before is not None:
            audit = await self._open().purge(PurgeTarget.AUDIT, cut.audit_before, 0)
        return PurgeResult(succeeded=succeeded, dead_letters=dead, audit=audit)


def _report_dead(item: WorkItem, reason: DeadReason, error_type: str | None) -> None:
    dead_letter_written(
        reason=reason.value,
        topic=item.topic,
        item_id=item.id,
        attempts=item.attempt,
        max_attempts=item.max_attempts,
        queue=item.queue,
        error_type=error_type,
    )
