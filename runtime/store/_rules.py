"""The state rules of work items, as pure functions: no I/O, no SQL, no clock.

A backend loads and locks a row, hands it to a decision function here with the facts of
the operation, and applies the :class:`Transition` it returns in the same transaction
(or, when the decision raises, changes nothing). Set-based backends express the same
rules as guarded statements (``state = 'leased' AND lease_token = ?``) and ask
:func:`lease_refusal` why a row was missed, so the wording and the error types come from
one place whatever the backend. ``runtime.replay`` reads the same rules for its dry runs.
"""

from __future__ import annotations

from typing import Any

import msgspec

from policies import FailureKind, RetryPolicy
from runtime._errors import InvalidTransition, ItemNotFound, ReplayRefused, StaleLease
from runtime.store._envelope import DeadReason, Failure, ItemState, WorkItem, truncate_error

#: States an item can be leased from.
LEASABLE = (ItemState.ENQUEUED, ItemState.RETRY_SCHEDULED)
#: States an item has not finished in (``depth`` counts these).
UNFINISHED = (ItemState.ENQUEUED, ItemState.RETRY_SCHEDULED, ItemState.LEASED)
#: States that set ``finished_at``.
FINISHED = (ItemState.SUCCEEDED, ItemState.DEAD_LETTERED, ItemState.ARCHIVED)

Refusal = StaleLease | ItemNotFound


class Transition(msgspec.Struct, frozen=True):
    """One state change of one item, decided by a rule and applied by a backend.

    Applying it means: the row moves to ``to_state`` (or is deleted when that is None),
    ``updated_at`` becomes the transaction's time, the lease is cleared, ``finished_at`` is
    set when ``to_state`` is in :data:`FINISHED`, ``available_at`` and ``last_error`` are
    set when given; a ``dead_reason`` writes the dead-letter record, an ``ARCHIVED`` state
    stamps the record's ``archived_at``; and one audit row of ``kind`` is written (from the
    row's state, with ``error`` and ``detail``).
    """

    kind: str
    to_state: ItemState | None
    error: str | None = None
    available_at: float | None = None
    dead_reason: DeadReason | None = None
    traceback: str | None = None
    detail: dict[str, Any] | None = None
    delay_s: float = 0.0


class FailFacts(msgspec.Struct, frozen=True):
    """What a failed attempt brings to :func:`decide_fail`."""

    token: str
    failure: Failure
    policy: RetryPolicy
    rand: float


def missing(item_id: str, *, dead_letter: bool = False) -> ItemNotFound:
    """The error for an id that names no item (or no dead letter)."""
    what = "dead letter" if dead_letter else "work item"
    return ItemNotFound(f"no {what} with id {item_id!r}")


def lease_refusal(item: WorkItem | None, item_id: str, token: str) -> Refusal | None:
    """Fencing: None when ``token`` is ``item``'s current lease, else why not."""
    if item is None:
        return missing(item_id)
    if item.state is ItemState.LEASED and item.lease_token == token:
        return None
    return StaleLease(
        f"lease token for item {item_id} is stale: the item is {item.state.value}"
        + ("" if item.state is not ItemState.LEASED else " under a newer lease")
    )


def require_lease(item: WorkItem, token: str) -> None:
    """Raise the refusal of :func:`lease_refusal`, if any."""
    refusal = lease_refusal(item, item.id, token)
    if refusal is not None:
        raise refusal


def lease_order(item: WorkItem) -> tuple[int, int]:
    """Sort key of leasing: highest priority first, then oldest (by sequence)."""
    return (-item.priority, item.seq)


def shed_order(item: WorkItem) -> tuple[int, int]:
    """Sort key of shedding: lowest priority first, then newest."""
    return (item.priority, -item.seq)


def leased(item: WorkItem, now: float, owner: str, token: str, lease_s: float) -> WorkItem:
    """The row of a leasable ``item`` after leasing it (the attempt is counted here)."""
    return msgspec.structs.replace(
        item,
        state=ItemState.LEASED,
        attempt=item.attempt + 1,
        lease_owner=owner,
        lease_token=token,
        lease_expires_at=now + lease_s,
        updated_at=now,
    )


def extended(item: WorkItem, now: float, lease_s: float) -> WorkItem:
    """The row of a leased ``item`` after a heartbeat."""
    return msgspec.structs.replace(item, lease_expires_at=now + lease_s, updated_at=now)


def applied(item: WorkItem, transition: Transition, now: float) -> WorkItem:
    """The row of ``item`` after ``transition`` (for backends that keep rows as records)."""
    assert transition.to_state is not None, "a deleting transition leaves no row"
    return msgspec.structs.replace(
        item,
        state=transition.to_state,
        updated_at=now,
        available_at=item.available_at
        if transition.available_at is None
        else transition.available_at,
        last_error=item.last_error if transition.error is None else transition.error,
        lease_owner=None,
        lease_token=None,
        lease_expires_at=None,
    )


def _dead(reason: DeadReason, error: str | None, traceback: str | None = None) -> Transition:
    return Transition(
        kind="dead_lettered",
        to_state=ItemState.DEAD_LETTERED,
        error=error,
        dead_reason=reason,
        traceback=traceback,
        detail={"reason": reason.value},
    )


def decide_ack(item: WorkItem, now: float, *, token: str) -> Transition:
    """A leased item succeeded. Raises :class:`StaleLease`."""
    require_lease(item, token)
    return Transition(kind="succeeded", to_state=ItemState.SUCCEEDED)


def decide_fail(item: WorkItem, now: float, facts: FailFacts) -> Transition:
    """A failed attempt: a retry after the policy's backoff, or a dead letter whose reason
    says why (terminal error, timeout, retries exhausted). Raises :class:`StaleLease`."""
    require_lease(item, facts.token)
    failure, policy = facts.failure, facts.policy
    error = truncate_error(f"{failure.error_type}: {failure.error}")
    hint = (
        FailureKind.TERMINAL
        if failure.terminal
        else FailureKind.TIMEOUT
        if failure.timeout
        else None
    )
    kind = policy.classify(failure.error_type, hint)
    decision = policy.decide(item.attempt, item.max_attempts, kind, facts.rand)
    if not decision.retry:
        reason = DeadReason(decision.reason or DeadReason.RETRIES_EXHAUSTED.value)
        return _dead(reason, error, truncate_error(failure.traceback))
    return Transition(
        kind="retry_scheduled",
        to_state=ItemState.RETRY_SCHEDULED,
        error=error,
        available_at=now + decision.delay_s,
        detail={"delay_s": round(decision.delay_s, 6)},
        delay_s=decision.delay_s,
    )


def decide_expired(item: WorkItem, now: float) -> Transition:
    """A lease ran out: the item is ready again, or a dead letter when out of attempts."""
    error = f"lease held by {item.lease_owner} expired (attempt {item.attempt})"
    if item.attempt >= item.max_attempts:
        return _dead(DeadReason.LEASE_EXPIRED, error)
    return Transition(
        kind="lease_expired", to_state=ItemState.ENQUEUED, error=error, available_at=now
    )


def decide_dead_letter(item: WorkItem, now: float, *, reason: DeadReason, error: str) -> Transition:
    """Dead-letter a waiting or leased item at once. Raises :class:`InvalidTransition`."""
    if item.state not in UNFINISHED:
        raise InvalidTransition(f"item {item.id} is {item.state.value}; it cannot be dead-lettered")
    return _dead(reason, truncate_error(error))


def decide_shed(item: WorkItem, now: float, *, dead_letter: bool) -> Transition:
    """Shed a waiting item: a dead letter with reason ``shed``, or deleted."""
    error = f"shed under pressure (priority {item.priority})"
    if dead_letter:
        return _dead(DeadReason.SHED, error)
    return Transition(kind="shed", to_state=None, error=error)


def decide_archive(item: WorkItem, now: float) -> Transition:
    """Archive a live dead letter. Raises :class:`ItemNotFound` or :class:`InvalidTransition`."""
    if item.state not in (ItemState.DEAD_LETTERED, ItemState.ARCHIVED):
        raise missing(item.id, dead_letter=True)
    if item.state is not ItemState.DEAD_LETTERED:
        raise InvalidTransition(f"dead letter {item.id} is already {item.state.value}")
    return Transition(kind="archived", to_state=ItemState.ARCHIVED)


def replay_refusal(
    item_id: str, state: ItemState, replay_count: int, *, force: bool
) -> ReplayRefused | InvalidTransition | None:
    """Whether a dead letter may be replayed: live ones only, and once unless forced."""
    if state is not ItemState.DEAD_LETTERED:
        return InvalidTransition(
            f"dead letter {item_id} is {state.value}; only live dead letters are replayed"
        )
    if replay_count and not force:
        return ReplayRefused(
            f"dead letter {item_id} was already replayed {replay_count} time(s); "
            "pass force to replay it again"
        )
    return None


def replay_copy(
    item: WorkItem, new_id: str, now: float, extra_trace: dict[str, str] | None
) -> WorkItem:
    """The new item a replay of dead ``item`` enqueues (``seq`` is the backend's to set).

    It keeps the payload, routing and trace context, plus ``extra_trace`` entries (the
    replay span's context), and links back through ``replay_of``.
    """
    trace = {**(item.trace_context or {}), **extra_trace} if extra_trace else item.trace_context
    return msgspec.structs.replace(
        item,
        id=new_id,
        seq=0,
        idempotency_key=None,
        state=ItemState.ENQUEUED,
        attempt=0,
        created_at=now,
        available_at=now,
        updated_at=now,
        trace_context=trace,
        last_error=None,
        lease_owner=None,
        lease_token=None,
        lease_expires_at=None,
        replay_of=item.id,
    )
