"""Waiting for the writer from either event loop (Trio is the default; asyncio works too)."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from pathlib import Path

import pytest

from runtime import ValidationFailed
from runtime.store import NewItem, open_store
from runtime.store._bridge import wait_future


async def test_wait_future_returns_a_finished_result_at_once() -> None:
    future: Future[int] = Future()
    future.set_result(7)
    assert await wait_future(future) == 7


async def test_wait_future_raises_the_future_exception() -> None:
    future: Future[int] = Future()
    future.set_exception(KeyError("k"))
    with pytest.raises(KeyError):
        await wait_future(future)


def test_store_works_on_asyncio(tmp_path: Path) -> None:
    async def main() -> None:
        async with open_store(tmp_path / "q.db") as store:
            result = await store.enqueue(NewItem(topic="t", payload=b"on asyncio"))
            (item,) = await store.lease("w")
            assert item.id == result.id and item.lease_token is not None
            await store.ack(item.id, item.lease_token)
            with pytest.raises(ValidationFailed):
                await store.enqueue(NewItem(topic="", payload=b""))
            assert (await store.metrics()).succeeded == 1

    asyncio.run(main())


async def test_store_works_under_an_autojump_clock(tmp_path: Path, autojump_clock: object) -> None:
    import trio

    async with open_store(tmp_path / "q.db") as store:
        with trio.fail_after(1):  # virtual time must not leap while SQLite works
            result = await store.enqueue(NewItem(topic="t", payload=b"p"))
            assert (await store.get(result.id)).payload == b"p"
