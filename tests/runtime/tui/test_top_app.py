"""``garrison top`` driven by textual's pilot against a seeded database.

The app runs with ``live=False`` and each test calls ``refresh_now`` itself, and the store
runs on an injected clock, so no test waits on real time.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from runtime.store import DeadReason, Store, StoreConfig, open_store
from runtime.tui import TopApp, TopConfig
from tests.runtime.tui.conftest import Clock

Seeded = tuple[Path, dict[str, list[str]]]


@asynccontextmanager
async def running(
    path: Path, clock: Clock, size: tuple[int, int], config: TopConfig | None = None
) -> AsyncIterator[tuple[TopApp, Pilot[None], Store]]:
    async with open_store(path, StoreConfig(), create=False, clock=clock) as store:
        app = TopApp(store, config or TopConfig(), source="top.db", live=False)
        async with app.run_test(size=size) as pilot:
            await app.refresh_now()
            await pilot.pause()
            yield app, pilot, store


def run(body: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        # A hang fails here instead of hanging the suite.
        async with asyncio.timeout(60):
            await body()

    asyncio.run(bounded())


def text_of(app: TopApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def svg_text(svg: str) -> str:
    """The characters of an exported screenshot, spaces restored."""
    spans = re.findall(r">([^<>]*)</text>", svg)
    return "".join(spans).replace("&#160;", " ").replace("&amp;", "&")


def test_main_screen_shows_the_figures_and_a_snapshot(
    seeded: Seeded, clock: Clock, tmp_path: Path
) -> None:
    path, ids = seeded

    async def body() -> None:
        async with running(path, clock, (120, 40)) as (app, _, _store):
            snap = app.snapshot
            assert snap is not None
            assert snap.waiting == 4 and snap.depth["dead_lettered"] == 2
            assert snap.depth["succeeded"] == 9
            assert snap.throughput_per_min == 9.0
            assert snap.oldest_wait_s == 30.0
            assert [(p.channel, p.level, p.depth) for p in snap.pressure] == [
                ("workers", "elevated", 40)
            ]
            rows = {r.topic: r for r in snap.topics}
            assert rows["orders"].depth.text() == "4" and rows["emails"].depth.text() == "0"
            assert rows["orders"].rate_per_min.text(1) == "6.0"
            assert rows["orders"].failures.text() == "1"
            assert rows["orders"].staleness_s == 33.0
            # Newest first: the emails dead letter was written last.
            assert [d.item_id for d in app.letters] == ids["dead"][::-1]
            header = text_of(app, "#figures")
            assert (
                "waiting 4" in header
                and "9/min" in header
                and "oldest ready 30s" in header
                and "new dead 2" in header
            )
            assert "workers:elevated" in header
            app.save_screenshot("top.svg", path=str(tmp_path))
        shot = svg_text((tmp_path / "top.svg").read_text())
        for expected in (
            "waiting 4",
            "9/min",
            "workers:elevated",
            "Topics (2), by depth",
            "orders",
            "Dead letters (2), newest first",
            "retries_exhausted",
            ids["dead"][1],
        ):
            assert expected in shot, expected

    run(body)


def test_readable_at_80x24(seeded: Seeded, clock: Clock, tmp_path: Path) -> None:
    path, _ = seeded

    async def body() -> None:
        async with running(path, clock, (80, 24)) as (app, _, _store):
            app.save_screenshot("small.svg", path=str(tmp_path))
        shot = svg_text((tmp_path / "small.svg").read_text())
        for expected in ("waiting 4", "9/min", "workers:elevated", "orders", "emails"):
            assert expected in shot, expected
        assert "Dead letters (2)" in shot and "retries_exhausted" in shot

    run(body)


def test_dead_letter_detail_then_replay_once_after_a_dry_run(seeded: Seeded, clock: Clock) -> None:
    path, ids = seeded
    newest = ids["dead"][1]

    async def body() -> None:
        async with running(path, clock, (120, 40)) as (app, pilot, store):
            await pilot.press("enter")
            await pilot.pause()
            detail = text_of(app, "#detail-body")
            assert newest in detail and "ValueError: bad emails" in detail
            assert "Traceback (most recent call last)" in detail
            assert "attempts  1/1" in detail
            assert "enqueued" in detail and "dead_lettered" in detail  # the audit trail
            assert "hello" not in detail and '{"bad": true}' in detail  # payload preview

            await pilot.press("p")
            await pilot.pause()
            assert "Dry run" in text_of(app, "#question")
            assert (await store.get_dead_letter(newest)).replay_count == 0
            await pilot.press("y")
            await pilot.pause()
            status = text_of(app, "#detail-status")
            assert status.startswith("replayed as ")
            letter = await store.get_dead_letter(newest)
            assert letter.replay_count == 1
            assert status == f"replayed as {letter.replayed_item_id}"

            # Once: the second dry run says it would be skipped and asks nothing.
            await pilot.press("p")
            await pilot.pause()
            assert "would_skip" in text_of(app, "#detail-status")
            assert not app.screen.query("#question")  # no question asked
            assert (await store.get_dead_letter(newest)).replay_count == 1
            await pilot.press("escape")
            await pilot.pause()
            assert app.refreshes == 2  # closing the detail re-reads the store

    run(body)


def test_archive_asks_first(seeded: Seeded, clock: Clock) -> None:
    path, ids = seeded
    newest = ids["dead"][1]

    async def body() -> None:
        async with running(path, clock, (120, 40)) as (app, pilot, store):
            await pilot.press("enter", "a")
            await pilot.pause()
            assert "Archive dead letter" in text_of(app, "#question")
            await pilot.press("n")
            await pilot.pause()
            assert text_of(app, "#detail-status") == "archive cancelled"
            assert (await store.get_dead_letter(newest)).archived_at is None
            await pilot.press("a", "y")
            await pilot.pause()
            assert text_of(app, "#detail-status") == f"archived {newest}"
            assert (await store.get_dead_letter(newest)).archived_at is not None
            await pilot.press("a", "y")
            await pilot.pause()
            assert text_of(app, "#detail-status").startswith("archive refused")
            await pilot.press("escape")
            await pilot.pause()
            # Archived dead letters leave the list.
            assert [d.item_id for d in app.letters] == [ids["dead"][0]]

    run(body)


def test_filter_sort_help_and_quit(seeded: Seeded, clock: Clock) -> None:
    path, ids = seeded

    async def body() -> None:
        async with running(path, clock, (120, 40)) as (app, pilot, _store):
            await pilot.press("f")
            await pilot.pause()
            await pilot.press(*"orders", "tab", *"nonsense", "enter")
            await pilot.pause()
            assert "unknown reason" in str(app.screen.query_one("#filter-error").render())
            app.screen.query_one("#reason").value = ""  # type: ignore[attr-defined]
            await pilot.press("enter")
            await pilot.pause()
            assert app.topic_filter == "orders" and app.reason_filter is None
            assert [d.item_id for d in app.letters] == [ids["dead"][0]]
            app.reason_filter = DeadReason.SHED
            await app.refresh_now()
            assert app.letters == []
            title = str(app.query_one("#dead", DataTable).border_title)
            assert "filter topic=orders reason=shed" in title

            order = []
            for _ in range(5):
                order.append(app.sort_key.value)
                await pilot.press("s")
            assert order == ["depth", "rate", "failures", "staleness", "topic"]
            assert app.sort_key.value == "depth"

            await pilot.press("question_mark")
            await pilot.pause()
            assert "replay: a dry run is shown first" in str(app.screen.query_one(Static).render())
            await pilot.press("escape")
            await pilot.pause()
            await pilot.press("r")
            await pilot.pause()
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0

    run(body)


def test_reads_write_nothing(seeded: Seeded, clock: Clock) -> None:
    path, _ = seeded

    async def body() -> None:
        async with running(path, clock, (120, 40)) as (app, _, store):
            before = len(await store.events(limit=1000))
            for _ in range(3):
                clock.t += 2
                await app.refresh_now()
            assert len(await store.events(limit=1000)) == before
            assert len(app.throughput.values()) == 4

    run(body)


def test_live_ticks_refresh_through_a_worker(seeded: Seeded, clock: Clock) -> None:
    path, _ = seeded

    async def body() -> None:
        async with running(path, clock, (120, 40)) as (app, pilot, _store):
            app._tick()
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.refreshes == 2

    run(body)


def test_a_store_error_is_shown_not_raised(seeded: Seeded, clock: Clock) -> None:
    path, _ = seeded

    async def body() -> None:
        async with running(path, clock, (120, 40)) as (app, pilot, store):
            await store.aclose()
            await app.refresh_now()
            await pilot.pause()
            assert app.error is not None and "closed" in app.error
            assert "store:" in text_of(app, "#status")

    run(body)


def test_dead_letter_list_follows_the_newest_unless_the_cursor_moved(
    seeded: Seeded, clock: Clock
) -> None:
    path, ids = seeded

    async def body() -> None:
        async with running(path, clock, (120, 40)) as (app, pilot, store):
            table = app.query_one("#dead", DataTable)

            async def dead_letter_more() -> str:
                from runtime.store import NewItem

                r = await store.enqueue(NewItem(topic="orders", payload=b"x"))
                clock.t += 1
                await store.dead_letter(r.id, DeadReason.TERMINAL_ERROR, "no")
                await app.refresh_now()
                await pilot.pause()
                return r.id

            newest = await dead_letter_more()
            assert table.cursor_row == 0 and app.letters[0].item_id == newest
            await pilot.press("down")
            held = app.letters[1].item_id
            await dead_letter_more()
            assert app.letters[table.cursor_row].item_id == held and table.cursor_row == 2
            assert len(ids["dead"]) == 2

    run(body)
