"""The pure state rules: each decision from a row and its facts, with no store at all."""

from __future__ import annotations

import functools

import msgspec
import pytest

from policies import RetryPolicy
from runtime import InvalidTransition, ItemNotFound, ReplayRefused, StaleLease
from runtime.store import DeadReason, Failure, ItemState, WorkItem
from runtime.store import _rules as rules

NOW = 1_000.0
POLICY = RetryPolicy(
    max_attempts=3, base_delay_s=10.0, jitter=0.0, terminal_errors=frozenset({"Bad"})
)


def row(state: ItemState = ItemState.LEASED, **fields: object) -> WorkItem:
    base = WorkItem(
        id="i1",
        seq=7,
        queue="q",
        topic="t",
        key="k",
        priority=0,
        payload=b"p",
        sha256="0" * 64,
        idempotency_key=None,
        state=state,
        attempt=1,
        max_attempts=3,
        created_at=1.0,
        available_at=1.0,
        updated_at=1.0,
        correlation_id="c",
        trace_context={"traceparent": "x"},
        last_error=None,
        lease_owner="w" if state is ItemState.LEASED else None,
        lease_token="tok" if state is ItemState.LEASED else None,
        lease_expires_at=NOW if state is ItemState.LEASED else None,
        replay_of=None,
    )
    return msgspec.structs.replace(base, **fields)


def fail(item: WorkItem, failure: Failure, token: str = "tok") -> rules.Transition:
    return rules.decide_fail(item, NOW, rules.FailFacts(token, failure, POLICY, 0.5))


def test_fencing_names_why_a_token_is_refused() -> None:
    assert rules.lease_refusal(row(), "i1", "tok") is None
    assert isinstance(rules.lease_refusal(None, "i1", "tok"), ItemNotFound)
    newer = rules.lease_refusal(row(), "i1", "old")
    assert isinstance(newer, StaleLease) and "newer lease" in str(newer)
    done = rules.lease_refusal(row(ItemState.SUCCEEDED), "i1", "tok")
    assert isinstance(done, StaleLease) and "succeeded" in str(done)


def test_a_retryable_failure_is_scheduled_by_the_policy() -> None:
    change = fail(row(), Failure(error="boom", error_type="IOError"))
    assert change.to_state is ItemState.RETRY_SCHEDULED
    assert (change.available_at, change.delay_s) == (NOW + 10.0, 10.0)
    assert change.error == "IOError: boom" and change.dead_reason is None


@pytest.mark.parametrize(
    ("item", "failure", "reason"),
    [
        (row(attempt=3), Failure(error="x"), DeadReason.RETRIES_EXHAUSTED),
        (row(attempt=3), Failure(error="x", timeout=True), DeadReason.TIMEOUT),
        (row(), Failure(error="x", terminal=True), DeadReason.TERMINAL_ERROR),
        (row(), Failure(error="x", error_type="Bad"), DeadReason.TERMINAL_ERROR),
    ],
)
def test_a_failure_that_is_not_retried_is_a_dead_letter_with_its_reason(
    item: WorkItem, failure: Failure, reason: DeadReason
) -> None:
    change = fail(item, msgspec.structs.replace(failure, traceback="tb"))
    assert (change.to_state, change.dead_reason, change.traceback) == (
        ItemState.DEAD_LETTERED,
        reason,
        "tb",
    )
    assert change.detail == {"reason": reason.value}


def test_a_failure_with_a_stale_token_is_refused() -> None:
    with pytest.raises(StaleLease):
        fail(row(), Failure(error="x"), token="old")


def test_an_expired_lease_requeues_or_dead_letters_on_the_last_attempt() -> None:
    again = rules.decide_expired(row(), NOW)
    assert (again.to_state, again.available_at, again.kind) == (
        ItemState.ENQUEUED,
        NOW,
        "lease_expired",
    )
    last = rules.decide_expired(row(attempt=3), NOW)
    assert last.dead_reason is DeadReason.LEASE_EXPIRED


def test_only_unfinished_items_are_dead_lettered_at_once() -> None:
    decide = functools.partial(rules.decide_dead_letter, reason=DeadReason.SHED, error="e")
    for state in rules.UNFINISHED:
        assert decide(row(state), NOW).dead_reason is DeadReason.SHED
    with pytest.raises(InvalidTransition):
        decide(row(ItemState.SUCCEEDED), NOW)


def test_archive_guard() -> None:
    assert rules.decide_archive(row(ItemState.DEAD_LETTERED), NOW).to_state is ItemState.ARCHIVED
    with pytest.raises(InvalidTransition):
        rules.decide_archive(row(ItemState.ARCHIVED), NOW)
    with pytest.raises(ItemNotFound):
        rules.decide_archive(row(ItemState.ENQUEUED), NOW)


def test_replay_once_unless_forced_and_never_archived() -> None:
    dead = ItemState.DEAD_LETTERED
    assert rules.replay_refusal("i1", dead, 0, force=False) is None
    assert isinstance(rules.replay_refusal("i1", dead, 1, force=False), ReplayRefused)
    assert rules.replay_refusal("i1", dead, 1, force=True) is None
    archived = rules.replay_refusal("i1", ItemState.ARCHIVED, 0, force=True)
    assert isinstance(archived, InvalidTransition)


def test_a_replay_copy_is_fresh_and_linked() -> None:
    copy = rules.replay_copy(row(ItemState.DEAD_LETTERED), "i2", NOW, {"replay": "r"})
    assert (copy.id, copy.state, copy.attempt, copy.replay_of) == (
        "i2",
        ItemState.ENQUEUED,
        0,
        "i1",
    )
    assert copy.trace_context == {"traceparent": "x", "replay": "r"}
    assert copy.lease_token is None and copy.created_at == NOW


def test_applied_clears_the_lease_and_keeps_what_is_not_given() -> None:
    after = rules.applied(
        row(last_error="old"), rules.Transition("archived", ItemState.ARCHIVED), NOW
    )
    assert after.lease_token is None and after.lease_owner is None
    assert (after.last_error, after.available_at, after.updated_at) == ("old", 1.0, NOW)


def test_lease_and_shed_orders() -> None:
    items = [row(priority=p, seq=s) for p, s in ((0, 2), (5, 3), (0, 1))]
    assert [i.seq for i in sorted(items, key=rules.lease_order)] == [3, 1, 2]
    assert [i.seq for i in sorted(items, key=rules.shed_order)] == [2, 1, 3]
