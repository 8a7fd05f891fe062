"""The backend protocol: the transactional primitives a store front end runs on.

The front end (:class:`~runtime.store.QueueStore`) owns policy: validation and bounds,
telemetry, retry decisions, the ready mark, purge loops. A backend only loads, locks and
applies. Every write primitive is one transaction: it either happens whole or, when it
raises, leaves nothing behind. The state rules come from ``runtime.store._rules``: a
backend calls their decision functions on the rows it locked (``decide(row, now)``) and
applies the :class:`~runtime.store._rules.Transition` they return.

The hot primitives (``enqueue``, ``lease``, ``extend``, ``ack``) take whole batches, so a
SQL backend can run each as a few set-based statements (SQLite) or a single data-modifying
CTE with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL); they apply the same rules as guards in
their WHERE clauses and ask :func:`~runtime.store._rules.lease_refusal` why a row missed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import msgspec

from policies import RetentionCutoffs
from runtime.store._envelope import DeadLetter, DeadReason, ItemState, NewItem, WorkItem
from runtime.store._records import AuditEvent, EnqueueResult, PurgeResult, QueueMetrics
from runtime.store._rules import Refusal, Transition

#: A rule bound to its facts: the transition of one locked row at the transaction's time.
Decide = Callable[[WorkItem, float], Transition]
#: A row as it was before a transition, and the transition applied to it.
Changed = tuple[WorkItem, Transition]


class Admitted(msgspec.Struct, frozen=True):
    """An item that passed the intake gate: its payload digest and its attempt cap."""

    item: NewItem
    sha256: str
    max_attempts: int


class ById(msgspec.Struct, frozen=True):
    """Pick one row by id (``dead_letter``: the id must name a dead letter, for the
    wording of the not-found error)."""

    item_id: str
    dead_letter: bool = False


class Expired(msgspec.Struct, frozen=True):
    """Pick leased rows whose lease ran out by the transaction's time, oldest expiry
    first, at most ``limit``."""

    limit: int


class Sheddable(msgspec.Struct, frozen=True):
    """Pick waiting rows in shedding order (``_rules.shed_order``), at most ``limit``."""

    limit: int


Pick = ById | Expired | Sheddable


class PurgeTarget(enum.StrEnum):
    """What a purge deletes (rows older than a cut-off; each purge is audited)."""

    SUCCEEDED = "succeeded"  # finished_at before the cut-off
    ARCHIVED = "archived"  # archived dead letters, by archived_at
    LIVE_DEAD_LETTERS = "live_dead_letters"  # live dead letters, by dead_at
    DEAD_LETTERS = "dead_letters"  # both, by archived_at or else dead_at
    AUDIT = "audit"  # audit rows, by time (limit not applied: one statement)


class DeadLetterQuery(msgspec.Struct, frozen=True):
    """Filters of a dead-letter listing (oldest first)."""

    limit: int
    topic: str | None = None
    reason: DeadReason | None = None
    since: float | None = None
    until: float | None = None
    include_archived: bool = False


class EventQuery(msgspec.Struct, frozen=True):
    """Filters of an audit listing (oldest first)."""

    limit: int
    item_id: str | None = None
    topic: str | None = None
    kind: str | None = None
    since: float | None = None


class Backend(Protocol):
    """Transactional primitives over one queue of one database.

    Bounds, validation and policy are the front end's: a backend trusts its arguments.
    Write primitives are cancellation-safe (a write that started completes; the caller
    sees cancellation afterwards) and raise ``StoreUnavailable`` once closed.
    """

    def depth_now(self) -> dict[str, int]:
        """Unfinished items by state, blocking; called from the metrics exporter's thread."""
        ...

    async def aclose(self) -> None:
        """Release the backend (idempotent)."""
        ...

    # -- writes: one transaction each ---------------------------------------------------

    async def enqueue(self, items: Sequence[Admitted]) -> list[EnqueueResult]:
        """Insert items with their audit rows; a known idempotency key returns its id."""
        ...

    async def lease(
        self, owner: str, n: int, lease_s: float, topics: Sequence[str] | None, reclaim: int
    ) -> tuple[list[WorkItem], list[Changed]]:
        """Reclaim up to ``reclaim`` expired leases (``_rules.decide_expired``), then lease up
        to ``n`` ready items in ``_rules.lease_order`` with fresh tokens; return the leased
        rows in that order and the reclaimed changes."""
        ...

    async def extend(
        self, leases: Sequence[tuple[str, str]], lease_s: float
    ) -> list[float | Refusal]:
        """Extend each fenced lease to now + ``lease_s``; per lease its new expiry or why not."""
        ...

    async def ack(
        self, leases: Sequence[tuple[str, str]], effects: Mapping[str, Sequence[str]] | None
    ) -> list[Refusal | None]:
        """Mark fenced leases succeeded (``_rules.decide_ack``), recording their effects."""
        ...

    async def transition(self, pick: Pick, decide: Decide) -> list[Changed]:
        """Lock the picked rows, decide each, apply each. A ``ById`` that names nothing
        raises ``ItemNotFound``; a decision that raises undoes the whole call."""
        ...

    async def replay(self, item_id: str, force: bool, extra_trace: dict[str, str] | None) -> str:
        """Enqueue ``_rules.replay_copy`` of a dead letter if ``_rules.replay_refusal``
        allows; count the replay on the dead letter; return the new id."""
        ...

    async def purge(self, target: PurgeTarget, before: float, limit: int) -> int:
        """Delete up to ``limit`` rows of ``target`` older than ``before``; return how many."""
        ...

    async def record_event(self, kind: str, detail: dict[str, object]) -> None:
        """Write a runtime event to the audit trail."""
        ...

    async def record_effect(self, effect_key: str, item_id: str) -> bool:
        """Record a delivered effect; False if it was recorded before."""
        ...

    async def save_checkpoint(self, name: str, state: bytes) -> None:
        """Keep the latest snapshot of actor ``name``."""
        ...

    # -- reads ---------------------------------------------------------------------------

    async def get(self, item_id: str) -> WorkItem:
        """One item. Raises ``ItemNotFound``."""
        ...

    async def items(self, state: ItemState | None, limit: int) -> list[WorkItem]:
        """Items in sequence order."""
        ...

    async def dead_letter(self, item_id: str) -> DeadLetter:
        """One dead letter. Raises ``ItemNotFound``."""
        ...

    async def dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        ...

    async def events(self, query: EventQuery) -> list[AuditEvent]:
        """Audit rows, oldest first."""
        ...

    async def depth(self) -> dict[str, int]:
        """Unfinished items by state."""
        ...

    async def metrics(self, now: float, since_s: float) -> QueueMetrics:
        """Depth by state and rates over ``(now - since_s, now]``."""
        ...

    async def retention_counts(self, cut: RetentionCutoffs) -> PurgeResult:
        """What a purge at these cut-offs would delete."""
        ...

    async def has_effect(self, effect_key: str) -> bool:
        """Whether an effect was recorded."""
        ...

    async def load_checkpoint(self, name: str) -> bytes | None:
        """The latest snapshot of actor ``name``."""
        ...
