"""The ``Store`` protocol every store implements, and the narrow roles it is made of.

A component declares the role it needs (``Producer``, ``Consumer``, ``DeadLetterAdmin``,
``Ledger``) rather than the whole store. The store conformance suite in
``tests/runtime/store`` is written against ``Store`` and parametrised over backends, so a
new backend proves itself by passing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from policies import RetentionPolicy
from runtime._errors import ItemNotFound, StaleLease
from runtime.store._envelope import DeadLetter, DeadReason, Failure, ItemState, NewItem, WorkItem
from runtime.store._records import AuditEvent, EnqueueResult, FailOutcome, PurgeResult, QueueMetrics


class Producer(Protocol):
    """What puts work in: intake."""

    def now(self) -> float:
        """The store's clock (seconds since the epoch)."""

    async def enqueue(self, item: NewItem) -> EnqueueResult:
        """Add one item (idempotent by key)."""

    async def enqueue_many(self, items: Sequence[NewItem]) -> list[EnqueueResult]:
        """Add many items atomically."""


class Consumer(Protocol):
    """What takes work out: the lease cycle and its wake-up."""

    def now(self) -> float:
        """The store's clock (seconds since the epoch)."""

    def ready_mark(self) -> int:
        """A counter moved by this object's operations that made items ready to lease."""

    async def wait_ready(self, mark: int, timeout_s: float) -> None:
        """Wait until ``ready_mark() != mark`` or ``timeout_s`` passed (an event, no polling)."""

    async def lease(
        self,
        owner: str,
        n: int = 1,
        lease_s: float = 30.0,
        topics: Sequence[str] | None = None,
    ) -> list[WorkItem]:
        """Lease up to ``n`` ready items, priority first then sequence."""

    async def heartbeat(self, item_id: str, token: str, lease_s: float = 30.0) -> float:
        """Extend a lease."""

    async def heartbeat_many(
        self, leases: Sequence[tuple[str, str]], lease_s: float = 30.0
    ) -> list[StaleLease | ItemNotFound | None]:
        """Extend many leases in one transaction; per-lease outcome."""

    async def ack(self, item_id: str, token: str, *, effects: Sequence[str] = ()) -> None:
        """Mark succeeded."""

    async def ack_many(
        self,
        leases: Sequence[tuple[str, str]],
        *,
        effects: Mapping[str, Sequence[str]] | None = None,
        contexts: Sequence[Mapping[str, str] | None] | None = None,
    ) -> list[StaleLease | ItemNotFound | None]:
        """Mark many succeeded; per-lease outcome."""

    async def fail(self, item_id: str, token: str, failure: Failure) -> FailOutcome:
        """Record a failed attempt."""

    async def dead_letter(self, item_id: str, reason: DeadReason, error: str) -> None:
        """Dead-letter an unfinished item at once."""

    async def reclaim_expired(self, limit: int | None = None) -> int:
        """Reclaim expired leases."""


class DeadLetterAdmin(Protocol):
    """What an operator does with dead letters."""

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
        """List dead letters."""

    async def get_dead_letter(self, item_id: str) -> DeadLetter:
        """One dead letter."""

    async def replay(self, item_id: str, *, force: bool = False) -> str:
        """Replay a dead letter once (or again with ``force``)."""

    async def archive(self, item_id: str) -> None:
        """Archive a dead letter."""

    async def purge_dead_letters(
        self, older_than_s: float = 0.0, *, include_live: bool = False
    ) -> int:
        """Delete old dead letters."""


class Ledger(Protocol):
    """The effects ledger and actor checkpoints."""

    async def record_effect(self, effect_key: str, item_id: str) -> bool:
        """Effects ledger: record."""

    async def has_effect(self, effect_key: str) -> bool:
        """Effects ledger: look up."""

    async def save_checkpoint(self, name: str, state: bytes) -> None:
        """Save an actor snapshot."""

    async def load_checkpoint(self, name: str) -> bytes | None:
        """Load an actor snapshot."""


class Store(Producer, Consumer, DeadLetterAdmin, Ledger, Protocol):
    """A durable queue with leases, retries, dead letters and an audit trail."""

    async def shed(self, n: int, *, dead_letter: bool = True) -> list[str]:
        """Shed the lowest-priority waiting items."""

    async def purge(
        self, policy: RetentionPolicy | None = None, *, dry_run: bool = False
    ) -> PurgeResult:
        """Retention purge."""

    async def get(self, item_id: str) -> WorkItem:
        """One item."""

    async def items(
        self, state: ItemState | None = None, *, limit: int | None = None
    ) -> list[WorkItem]:
        """Items, bounded."""

    async def depth(self) -> dict[str, int]:
        """Unfinished items by state; cheap to poll."""

    async def metrics(self, since_s: float = 60.0) -> QueueMetrics:
        """Queue figures over a window."""

    async def events(
        self,
        *,
        item_id: str | None = None,
        topic: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """The audit trail."""

    async def record_event(self, kind: str, detail: dict[str, object]) -> None:
        """Audit a runtime event."""

    async def aclose(self) -> None:
        """Release the backend."""
