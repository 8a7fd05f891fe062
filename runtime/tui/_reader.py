"""Reading the store for the live view: bounded reads through the public store API.

Every read goes through the store's own reader threads (the event loop never blocks), and
none writes: mutations happen only in :meth:`TopReader.replay` and :meth:`TopReader.archive`,
on an explicit operator action.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

import msgspec

from runtime.replay import ReplayConfig, ReplayOutcome, ReplaySelection, ReplayService
from runtime.store import AuditEvent, DeadLetter, DeadReason, ItemState, Store
from runtime.tui._config import TopConfig
from runtime.tui._model import (
    Estimate,
    Pressure,
    Snapshot,
    fold_pressure,
    scaled_counts,
    topic_rows,
)

# Windows tried, widening, to find the newest dead letters (the store lists oldest first).
_FIRST_WINDOW_S = 60.0
_WIDEN = 4.0
_MAX_WIDENINGS = 10
# Pages read forward inside a window that holds more than a page; bounds one refresh.
_MAX_PAGES = 16


class Detail(msgspec.Struct, frozen=True):
    """A dead letter with what the detail view shows next to it."""

    letter: DeadLetter
    trail: tuple[AuditEvent, ...]
    trail_capped: bool
    preview: str
    payload_size: int


class TopReader:
    """The live view's reads (and its two operator actions) over one store.

    Holds bounded state only: the latest level of at most ``config.max_channels``
    channels and the audit cursor of pressure events.
    """

    def __init__(self, store: Store, config: TopConfig) -> None:
        self.store = store
        self.config = config
        self._pressure: dict[str, Pressure] = {}
        self._pressure_since: float | None = None
        self._pressure_seen: set[int] = set()

    async def snapshot(self) -> Snapshot:
        """Read the header's figures and the topics table.

        Raises what the store raises (``StoreUnavailable``, ``StoreBusy``); cancelling
        abandons the snapshot, and no state of the reader is half updated.
        """
        cfg, store = self.config, self.store
        window = cfg.window_s
        metrics = await store.metrics(window)
        now = metrics.now
        since = now - window
        sample = cfg.topic_sample
        depth_by_topic: dict[str, Estimate] = {}
        oldest_wait: float | None = None
        for state in (ItemState.ENQUEUED, ItemState.RETRY_SCHEDULED, ItemState.LEASED):
            items = await store.items(state, limit=sample)
            total = metrics.depth.get(state.value, 0)
            _add(
                depth_by_topic, scaled_counts((i.topic for i in items), total, len(items) >= sample)
            )
            if state is ItemState.ENQUEUED:
                # Lowest sequence first: the sample starts with the longest waiting items.
                ready = [now - i.available_at for i in items if i.available_at <= now]
                oldest_wait = max(ready, default=None)
        done = await store.events(kind="succeeded", since=since, limit=sample)
        succeeded = scaled_counts(
            (e.topic or "?" for e in done), float(metrics.succeeded), len(done) >= sample
        )
        failures: dict[str, Estimate] = {}
        for kind, total in (
            ("retry_scheduled", metrics.retries),
            ("dead_lettered", metrics.dead_letters),
        ):
            rows = await store.events(kind=kind, since=since, limit=sample)
            _add(
                failures,
                scaled_counts((e.topic or "?" for e in rows), float(total), len(rows) >= sample),
            )
        pressure = await self._read_pressure()
        topics = topic_rows(
            now=now,
            window_s=window,
            depth=depth_by_topic,
            succeeded=succeeded,
            failures=failures,
            last_success=metrics.last_success,
            cap=cfg.max_topics,
        )
        return Snapshot(
            now=now,
            window_s=window,
            depth=dict(metrics.depth),
            throughput_per_min=metrics.throughput_per_min,
            avg_wait_s=metrics.avg_queue_latency_s,
            oldest_wait_s=oldest_wait,
            retries=metrics.retries,
            dead_lettered=metrics.dead_letters,
            pressure=tuple(sorted(pressure.values(), key=lambda p: p.channel)),
            topics=tuple(topics),
        )

    async def _read_pressure(self) -> dict[str, Pressure]:
        # Transitions are rare: read forward from the last one seen, a bounded number of
        # pages per refresh (a long history is caught up over several refreshes).
        page = self.config.topic_sample
        for _ in range(_MAX_PAGES):
            rows = await self.store.events(
                kind="pressure_transition", since=self._pressure_since, limit=page
            )
            fresh = [e for e in rows if e.id not in self._pressure_seen]
            self._pressure = fold_pressure(
                self._pressure, ((e.at, e.detail) for e in fresh), self.config.max_channels
            )
            if rows:
                last = rows[-1].at
                # Only events at the cursor's instant can come back; remember just those.
                self._pressure_seen = {e.id for e in rows if e.at == last}
                self._pressure_since = last
            if len(rows) < page or not fresh:
                break
        return self._pressure

    async def dead_letters(
        self, *, topic: str | None = None, reason: DeadReason | None = None
    ) -> list[DeadLetter]:
        """The newest live dead letters (at most ``config.dead_letter_rows``), newest first.

        The store lists oldest first, so this widens a window back from now until it holds
        enough, then reads it forward in bounded pages.
        """
        n = self.config.dead_letter_rows
        page = 4 * n
        rows = await self.store.dead_letters(topic=topic, reason=reason, limit=page)
        if len(rows) < page:
            return rows[::-1][:n]
        now = self.store.now()
        span = _FIRST_WINDOW_S
        for step in range(_MAX_WIDENINGS + 1):
            since = None if step == _MAX_WIDENINGS else now - span
            rows = await self.store.dead_letters(
                topic=topic, reason=reason, since=since, limit=page
            )
            if len(rows) >= n:
                break
            span *= _WIDEN
        newest: collections.deque[DeadLetter] = collections.deque(rows, maxlen=n)
        seen = {d.item_id for d in newest}
        for _ in range(_MAX_PAGES):
            if len(rows) < page:
                break
            rows = await self.store.dead_letters(
                topic=topic, reason=reason, since=rows[-1].dead_at, limit=page
            )
            fresh = [d for d in rows if d.item_id not in seen]
            if not fresh:
                break
            newest.extend(fresh)
            seen = {d.item_id for d in newest}
        return list(reversed(newest))

    async def detail(self, item_id: str) -> Detail:
        """One dead letter, its audit trail (oldest first, capped) and a payload preview.

        Raises:
            ItemNotFound: no dead letter with this id.
        """
        letter = await self.store.get_dead_letter(item_id)
        cap = self.config.audit_rows
        trail = await self.store.events(item_id=item_id, limit=cap + 1)
        item = await self.store.get(item_id)
        return Detail(
            letter=letter,
            trail=tuple(trail[:cap]),
            trail_capped=len(trail) > cap,
            preview=preview(item.payload, self.config.preview_bytes),
            payload_size=len(item.payload),
        )

    async def dry_run(self, item_id: str) -> ReplayOutcome:
        """What replaying this dead letter would do; changes nothing.

        Raises:
            ItemNotFound: no dead letter with this id.
        """
        report = await ReplayService(self.store, ReplayConfig(partitions=1)).run(
            ReplaySelection(ids=(item_id,)), dry_run=True
        )
        return report.outcomes[0]

    async def replay(self, item_id: str) -> str:
        """Replay the dead letter once; the new item's id.

        Raises:
            ReplayRefused: it was replayed before (or is archived).
            ItemNotFound: no dead letter with this id.
        """
        return await self.store.replay(item_id)

    async def archive(self, item_id: str) -> None:
        """Archive the dead letter.

        Raises:
            ItemNotFound: no dead letter with this id.
            InvalidTransition: it is archived already.
        """
        await self.store.archive(item_id)


def _add(into: dict[str, Estimate], counts: Mapping[str, Estimate]) -> None:
    """Add per-topic ``counts`` into ``into``; a sum is exact only if both parts are."""
    for topic, est in counts.items():
        before = into.get(topic, Estimate(0.0))
        into[topic] = Estimate(before.value + est.value, before.exact and est.exact)


def preview(payload: bytes, limit: int) -> str:
    """The start of a payload as text: UTF-8 when it decodes, else hex; ``…`` when cut."""
    head = payload[:limit]
    cut = "…" if len(payload) > limit else ""
    # A cut may split a character: drop up to three trailing bytes before giving up on text.
    for trim in range(4 if cut else 1):
        try:
            return head[: len(head) - trim].decode("utf-8") + cut
        except UnicodeDecodeError:
            continue
    return head.hex(" ") + cut
