"""The base of the store front end: its life cycle, and the reads, ledger and
checkpoints, which need no policy beyond the list bound (see ``_front.QueueStore``)."""

from __future__ import annotations

from collections.abc import Callable

from runtime._errors import StoreUnavailable, ValidationFailed
from runtime.store._backend import Backend, EventQuery
from runtime.store._config import StoreConfig
from runtime.store._envelope import ItemState, WorkItem
from runtime.store._ready import ReadyMark
from runtime.store._records import AuditEvent, QueueMetrics
from runtime.telemetry import queue_depth, register_depth_source


class StoreBase:
    """Life cycle, reads, effects ledger and checkpoints of a front end over a backend."""

    def __init__(
        self,
        backend: Backend,
        config: StoreConfig,
        *,
        clock: Callable[[], float],
        rand: Callable[[], float],
    ) -> None:
        self.backend = backend
        self.config = config
        self._clock = clock
        self._rand = rand
        self._closed = False
        # Moved by every operation of this handle that made items leasable, so an idle
        # consumer of the same process wakes at once (wait_ready).
        self._ready = ReadyMark()
        self._unregister_depth = register_depth_source(config.queue, self._sample_depth)

    def now(self) -> float:
        """The store's clock: wall time, unless a test injected another."""
        return self._clock()

    async def aclose(self) -> None:
        """Close the backend; later calls raise ``StoreUnavailable``. Idempotent."""
        self._stop()
        await self.backend.aclose()

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            self._unregister_depth()

    def _sample_depth(self) -> dict[str, int]:
        # Called by the queue-depth gauge in the metrics exporter's thread.
        return {} if self._closed else self.backend.depth_now()

    def _open(self) -> Backend:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        return self.backend

    # -- reads -------------------------------------------------------------------------

    def _cap(self, limit: int | None) -> int:
        return min(limit or self.config.list_limit, self.config.list_limit)

    async def get(self, item_id: str) -> WorkItem:
        """One item by id. Raises ItemNotFound."""
        return await self._open().get(item_id)

    async def items(
        self, state: ItemState | None = None, *, limit: int | None = None
    ) -> list[WorkItem]:
        """Items in sequence order, optionally of one state (bounded by ``limit``)."""
        return await self._open().items(state, self._cap(limit))

    async def depth(self) -> dict[str, int]:
        """Unfinished items by state (``enqueued``, ``retry_scheduled``, ``leased``); cheap
        enough to poll, whatever the size of the history."""
        return await self._open().depth()

    async def metrics(self, since_s: float = 60.0) -> QueueMetrics:
        """Depth by state and rates over the last ``since_s`` seconds.

        Raises:
            ValidationFailed: ``since_s`` is not positive.
        """
        if not since_s > 0:
            raise ValidationFailed("since must be positive", field="since")
        figures = await self._open().metrics(self._clock(), since_s)
        queue_depth(self.config.queue, figures.depth)
        return figures

    async def events(
        self,
        *,
        item_id: str | None = None,
        topic: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """The audit trail of this store's queue, oldest first, filtered."""
        query = EventQuery(self._cap(limit), item_id, topic, kind, since)
        return await self._open().events(query)

    async def record_event(self, kind: str, detail: dict[str, object]) -> None:
        """Write a runtime event (pressure transition, restart) to the audit trail."""
        await self._open().record_event(kind, detail)

    # -- effects ledger and checkpoints -----------------------------------------------

    async def record_effect(self, effect_key: str, item_id: str) -> bool:
        """Record a delivered side effect; False if it had been recorded before."""
        return await self._open().record_effect(effect_key, item_id)

    async def has_effect(self, effect_key: str) -> bool:
        """Whether a side effect with this key was delivered."""
        return await self._open().has_effect(effect_key)

    async def save_checkpoint(self, name: str, state: bytes) -> None:
        """Keep ``state`` as the latest snapshot of actor ``name``.

        Raises:
            ValidationFailed: ``state`` is over the payload size limit.
        """
        if len(state) > self.config.max_payload_bytes:
            raise ValidationFailed("checkpoint is over the payload size limit", field="state")
        await self._open().save_checkpoint(name, state)

    async def load_checkpoint(self, name: str) -> bytes | None:
        """The latest snapshot of actor ``name``, or None."""
        return await self._open().load_checkpoint(name)
