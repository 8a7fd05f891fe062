"""A stateful hypothesis test of the queue against a simple model of it (any backend).

Any interleaving of enqueue, lease, ack, fail, lease expiry (clock advance + reclaim),
replay, archive and purges must keep the store equal to the model: the same items in
the same states, the same lease picks, attempts that never go down, and nothing lost
(every id ever enqueued is either still there in the model's state or was purged).
The async store is driven from the sync state machine with one ``trio.run`` per call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as st
import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from policies import RetentionPolicy
from runtime import InvalidTransition, ReplayRefused, StaleLease
from runtime.store import DeadReason, Failure, ItemState, NewItem, Store
from tests.conftest import FakeClock


def call(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    async def main() -> Any:
        return await fn(*args, **kwargs)

    return trio.run(main)


@dataclass
class Model:
    """What the model knows of one item."""

    seq: int
    priority: int
    max_attempts: int
    state: ItemState = ItemState.ENQUEUED
    attempt: int = 0
    available_at: float = 0.0
    token: str | None = None
    expires_at: float = 0.0
    finished_at: float = 0.0
    dead_at: float = 0.0
    archived_at: float | None = None
    reason: DeadReason | None = None
    replay_count: int = 0
    replay_of: str | None = None
    key: str | None = None


BACKOFF = {1: 10.0, 2: 20.0}  # TEST_CONFIG: 10 s doubling, capped at 100 s; rand 0.5


class QueueMachine(RuleBasedStateMachine):
    def __init__(self, open_factory: Callable[[FakeClock], Any]) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.store: Store = open_factory(self.clock).open_sync()
        self.model: dict[str, Model] = {}
        self.purged: set[str] = set()
        self.enqueued_ids: set[str] = set()
        self.stale: list[tuple[str, str]] = []
        self.seen_attempts: dict[str, int] = {}
        self.next_seq = 0

    def teardown(self) -> None:
        call(self.store.aclose)

    # -- helpers ---------------------------------------------------------------------

    def _add(self, item_id: str, priority: int, max_attempts: int, **extra: Any) -> None:
        self.next_seq += 1
        self.model[item_id] = Model(
            seq=self.next_seq,
            priority=priority,
            max_attempts=max_attempts,
            available_at=self.clock.now,
            **extra,
        )
        self.enqueued_ids.add(item_id)

    def _in(self, *states: ItemState) -> list[str]:
        # In creation order (ids are random, so sorting by them would make replays flaky).
        return [
            i for i, m in sorted(self.model.items(), key=lambda e: e[1].seq) if m.state in states
        ]

    def _drop_lease(self, item_id: str) -> None:
        m = self.model[item_id]
        assert m.token is not None
        self.stale.append((item_id, m.token))
        m.token = None

    def _dead(self, item_id: str, reason: DeadReason) -> None:
        m = self.model[item_id]
        m.state, m.reason = ItemState.DEAD_LETTERED, reason
        m.finished_at = m.dead_at = self.clock.now

    def _reclaim(self) -> None:
        now = self.clock.now
        for item_id in self._in(ItemState.LEASED):
            m = self.model[item_id]
            if m.expires_at <= now:
                self._drop_lease(item_id)
                if m.attempt >= m.max_attempts:
                    self._dead(item_id, DeadReason.LEASE_EXPIRED)
                else:
                    m.state, m.available_at = ItemState.ENQUEUED, now

    # -- rules -----------------------------------------------------------------------

    @rule(
        priority=st.integers(-2, 2),
        max_attempts=st.integers(1, 3),
        delay=st.sampled_from([0.0, 0.0, 15.0]),
        key=st.none() | st.sampled_from(["k1", "k2"]),
    )
    def enqueue(self, priority: int, max_attempts: int, delay: float, key: str | None) -> None:
        item = NewItem(
            topic="t",
            payload=b"p",
            priority=priority,
            max_attempts=max_attempts,
            delay_s=delay,
            idempotency_key=key,
        )
        result = call(self.store.enqueue, item)
        known = [i for i, m in self.model.items() if key is not None and m.key == key]
        if known:  # the key is taken: the existing id comes back, nothing is added
            assert (result.id, result.created) == (known[0], False)
            return
        assert result.created  # (a purged item's key is free again)
        self._add(result.id, priority, max_attempts, key=key)
        self.model[result.id].available_at = self.clock.now + delay

    @rule(n=st.integers(1, 4), lease_s=st.sampled_from([5.0, 30.0]))
    def lease(self, n: int, lease_s: float) -> None:
        self._reclaim()
        now = self.clock.now
        ready = [
            (-m.priority, m.seq, i)
            for i, m in self.model.items()
            if m.state in (ItemState.ENQUEUED, ItemState.RETRY_SCHEDULED) and m.available_at <= now
        ]
        expected = [i for _, _, i in sorted(ready)[:n]]
        leased = call(self.store.lease, "w", n=n, lease_s=lease_s)
        assert [i.id for i in leased] == expected
        for item in leased:
            m = self.model[item.id]
            m.state, m.attempt = ItemState.LEASED, m.attempt + 1
            assert item.attempt == m.attempt
            m.token, m.expires_at = item.lease_token, now + lease_s

    @precondition(lambda self: self._in(ItemState.LEASED))
    @rule(pick=st.integers(0, 100))
    def ack(self, pick: int) -> None:
        leased = self._in(ItemState.LEASED)
        item_id = leased[pick % len(leased)]
        m = self.model[item_id]
        assert m.token is not None
        call(self.store.ack, item_id, m.token)
        self._drop_lease(item_id)
        m.state, m.finished_at = ItemState.SUCCEEDED, self.clock.now

    @precondition(lambda self: self._in(ItemState.LEASED))
    @rule(pick=st.integers(0, 100), terminal=st.booleans())
    def fail(self, pick: int, terminal: bool) -> None:
        leased = self._in(ItemState.LEASED)
        item_id = leased[pick % len(leased)]
        m = self.model[item_id]
        assert m.token is not None
        outcome = call(self.store.fail, item_id, m.token, Failure(error="x", terminal=terminal))
        self._drop_lease(item_id)
        if terminal:
            self._dead(item_id, DeadReason.TERMINAL_ERROR)
        elif m.attempt >= m.max_attempts:
            self._dead(item_id, DeadReason.RETRIES_EXHAUSTED)
        else:
            m.state = ItemState.RETRY_SCHEDULED
            m.available_at = self.clock.now + BACKOFF[m.attempt]
            assert outcome.delay_s == BACKOFF[m.attempt]
        assert outcome.state is m.state
        assert outcome.reason is m.reason

    @precondition(lambda self: self.stale)
    @rule(pick=st.integers(0, 100), op=st.sampled_from(["ack", "fail", "heartbeat"]))
    def stale_token_is_refused(self, pick: int, op: str) -> None:
        item_id, token = self.stale[pick % len(self.stale)]
        if item_id in self.purged:
            return
        with pytest.raises(StaleLease):
            if op == "ack":
                call(self.store.ack, item_id, token)
            elif op == "fail":
                call(self.store.fail, item_id, token, Failure(error="late"))
            else:
                call(self.store.heartbeat, item_id, token)

    @rule(seconds=st.sampled_from([1.0, 5.0, 10.0, 31.0]))
    def expire_leases(self, seconds: float) -> None:
        self.clock.advance(seconds)
        expected = sum(
            1 for i in self._in(ItemState.LEASED) if self.model[i].expires_at <= self.clock.now
        )
        assert call(self.store.reclaim_expired) == expected
        self._reclaim()

    @precondition(lambda self: self._in(ItemState.DEAD_LETTERED, ItemState.ARCHIVED))
    @rule(pick=st.integers(0, 100), force=st.booleans())
    def replay(self, pick: int, force: bool) -> None:
        dead = self._in(ItemState.DEAD_LETTERED, ItemState.ARCHIVED)
        item_id = dead[pick % len(dead)]
        m = self.model[item_id]
        if m.state is ItemState.ARCHIVED:
            with pytest.raises(InvalidTransition):
                call(self.store.replay, item_id, force=force)
            return
        if m.replay_count and not force:
            with pytest.raises(ReplayRefused):
                call(self.store.replay, item_id, force=force)
            return
        new_id = call(self.store.replay, item_id, force=force)
        m.replay_count += 1
        self._add(new_id, m.priority, m.max_attempts, replay_of=item_id)

    @precondition(lambda self: self._in(ItemState.DEAD_LETTERED, ItemState.ARCHIVED))
    @rule(pick=st.integers(0, 100))
    def archive(self, pick: int) -> None:
        dead = self._in(ItemState.DEAD_LETTERED, ItemState.ARCHIVED)
        item_id = dead[pick % len(dead)]
        m = self.model[item_id]
        if m.state is ItemState.ARCHIVED:
            with pytest.raises(InvalidTransition):
                call(self.store.archive, item_id)
            return
        call(self.store.archive, item_id)
        m.state, m.archived_at = ItemState.ARCHIVED, self.clock.now
        m.finished_at = self.clock.now

    def _purge(self, ids: list[str]) -> None:
        for item_id in ids:
            del self.model[item_id]
            self.purged.add(item_id)
        for m in self.model.values():
            if m.replay_of in self.purged:
                m.replay_of = None

    @rule(include_live=st.booleans())
    def purge_dead_letters(self, include_live: bool) -> None:
        states = (
            (ItemState.ARCHIVED, ItemState.DEAD_LETTERED) if include_live else (ItemState.ARCHIVED,)
        )
        now = self.clock.now
        doomed = [
            i
            for i in self._in(*states)
            if (self.model[i].archived_at or self.model[i].dead_at) < now
        ]
        assert call(self.store.purge_dead_letters, include_live=include_live) == len(doomed)
        self._purge(doomed)

    @rule(age=st.sampled_from([0.0, 10.0, 60.0]), dry_run=st.booleans())
    def retention_purge(self, age: float, dry_run: bool) -> None:
        cutoff = self.clock.now - age
        succeeded = [i for i in self._in(ItemState.SUCCEEDED) if self.model[i].finished_at < cutoff]
        archived = [
            i for i in self._in(ItemState.ARCHIVED) if (self.model[i].archived_at or 0.0) < cutoff
        ]
        policy = RetentionPolicy(succeeded_s=age, archived_s=age, dead_letters_s=None, audit_s=None)
        result = call(self.store.purge, policy, dry_run=dry_run)
        assert (result.succeeded, result.dead_letters) == (len(succeeded), len(archived))
        if not dry_run:
            self._purge(succeeded + archived)

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def store_matches_the_model(self) -> None:
        items = call(self.store.items)
        ids = [i.id for i in items]
        assert len(ids) == len(set(ids))  # every item in exactly one row, one state
        assert set(ids) == set(self.model)
        assert not set(ids) & self.purged
        assert self.enqueued_ids == set(self.model) | self.purged  # nothing lost
        for item in items:
            m = self.model[item.id]
            assert item.state is m.state, item.id
            assert item.attempt == m.attempt
            assert item.attempt >= self.seen_attempts.get(item.id, 0)  # never goes down
            self.seen_attempts[item.id] = item.attempt
            assert item.replay_of == m.replay_of
            assert (item.lease_token is not None) == (m.state is ItemState.LEASED)
            if m.state is ItemState.LEASED:
                assert item.lease_token == m.token
        letters = call(self.store.dead_letters, include_archived=True)
        assert {d.item_id for d in letters} == set(
            self._in(ItemState.DEAD_LETTERED, ItemState.ARCHIVED)
        )
        for letter in letters:
            m = self.model[letter.item_id]
            assert letter.reason is m.reason
            assert letter.replay_count == m.replay_count


def test_queue_behaves_like_its_model(fresh_store_factory: Any) -> None:
    run_state_machine_as_test(
        lambda: QueueMachine(fresh_store_factory),
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
