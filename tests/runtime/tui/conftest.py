from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from runtime.store import Failure, NewItem, StoreConfig, open_store

NOW = 1_800_000_000.0


class Clock:
    """A settable clock shared by the seeding store and the one top reads."""

    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> float:
        return self.t


async def seed(path: Path, clock: Clock) -> dict[str, list[str]]:
    """A queue with successes on two topics, waiting items, a retry, two dead letters and
    a pressure transition."""
    ids: dict[str, list[str]] = {"dead": [], "waiting": []}
    async with open_store(path, StoreConfig(), clock=clock) as store:
        for n in range(6):
            await store.enqueue(NewItem(topic="orders", payload=b'{"n": %d}' % n))
        for n in range(3):
            await store.enqueue(NewItem(topic="emails", payload=b"hello %d" % n))
        clock.t += 5
        for item in await store.lease("w", n=9):
            await store.ack(item.id, item.lease_token or "")
        clock.t += 1
        for topic in ("orders", "emails"):
            r = await store.enqueue(NewItem(topic=topic, payload=b'{"bad": true}', max_attempts=1))
            clock.t += 1
            (item,) = await store.lease("w", n=1)
            assert item.id == r.id
            await store.fail(
                item.id,
                item.lease_token or "",
                Failure(
                    error=f"ValueError: bad {topic}",
                    error_type="ValueError",
                    traceback="Traceback (most recent call last):\n  boom\nValueError: bad",
                ),
            )
            ids["dead"].append(item.id)
        for n in range(4):
            r = await store.enqueue(NewItem(topic="orders", payload=b"later %d" % n))
            ids["waiting"].append(r.id)
        await store.record_event(
            "pressure_transition",
            {"channel": "workers", "from": "normal", "to": "elevated", "depth": 40, "actions": []},
        )
        clock.t += 30
    return ids


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def seeded(tmp_path: Path, clock: Clock) -> tuple[Path, dict[str, list[str]]]:
    path = tmp_path / "top.db"
    ids = trio.run(seed, path, clock)
    return path, ids


Seeder = Callable[[Path, Clock], Awaitable[dict[str, list[str]]]]
