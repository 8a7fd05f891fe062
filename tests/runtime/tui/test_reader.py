"""The live view's reads: newest dead letters past a page, pressure caught up in pages."""

from __future__ import annotations

from pathlib import Path

from runtime.store import DeadReason, NewItem, StoreConfig, open_store
from runtime.tui import TopConfig, TopReader
from tests.runtime.tui.conftest import Clock


async def test_newest_dead_letters_past_one_page(tmp_path: Path, clock: Clock) -> None:
    async with open_store(tmp_path / "d.db", StoreConfig(), clock=clock) as store:
        ids = []
        for n in range(30):
            r = await store.enqueue(NewItem(topic="t", payload=b"%d" % n))
            await store.dead_letter(r.id, DeadReason.TERMINAL_ERROR, f"e{n}")
            ids.append(r.id)
            clock.t += 100 if n < 25 else 1  # old ones far back, the newest close together
        reader = TopReader(store, TopConfig(dead_letter_rows=3))
        newest = await reader.dead_letters()
        assert [d.item_id for d in newest] == ids[::-1][:3]
        assert [d.item_id for d in await reader.dead_letters(topic="other")] == []
        small = TopReader(store, TopConfig(dead_letter_rows=7))
        assert [d.item_id for d in await small.dead_letters()] == ids[::-1][:7]


async def test_dead_letters_in_one_burst(tmp_path: Path, clock: Clock) -> None:
    async with open_store(tmp_path / "b.db", StoreConfig(), clock=clock) as store:
        ids = []
        for n in range(20):
            r = await store.enqueue(NewItem(topic="t", payload=b"%d" % n))
            await store.dead_letter(r.id, DeadReason.SHED, "shed")
            ids.append(r.id)
            clock.t += 0.001
        clock.t += 10
        reader = TopReader(store, TopConfig(dead_letter_rows=2))
        assert [d.item_id for d in await reader.dead_letters()] == ids[::-1][:2]


async def test_pressure_caught_up_in_pages(tmp_path: Path, clock: Clock) -> None:
    async with open_store(tmp_path / "p.db", StoreConfig(), clock=clock) as store:
        for n in range(25):
            level = "critical" if n % 2 else "normal"
            await store.record_event("pressure_transition", {"channel": f"c{n % 3}", "to": level})
            if n % 5:
                clock.t += 1
        reader = TopReader(store, TopConfig(topic_sample=10))
        snap = await reader.snapshot()
        levels = {p.channel: p.level for p in snap.pressure}
        expected = {f"c{n % 3}": ("critical" if n % 2 else "normal") for n in range(25)}
        assert levels == expected
        await store.record_event("pressure_transition", {"channel": "c0", "to": "elevated"})
        again = await reader.snapshot()
        assert {p.channel: p.level for p in again.pressure}["c0"] == "elevated"
