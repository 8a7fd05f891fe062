"""The pipeline's conformance subset on both anyio backends (Trio and asyncio)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import sniffio

from policies import RetryPolicy
from runtime._errors import PressureRejected
from runtime.pipeline import HandlerContext, Pipeline, PipelineConfig
from runtime.store import DeadReason, NewItem, StoreConfig, WorkItem, open_store
from runtime.worker import TerminalError

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def run_until_settled(pipeline: Pipeline) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(pipeline.run)
        with anyio.fail_after(30):
            while sum((await pipeline.store.depth()).values()):
                await anyio.sleep(0.01)
        pipeline.stop()


async def test_items_are_handled_in_key_order_and_settled(
    tmp_path: Path, anyio_backend: str
) -> None:
    assert sniffio.current_async_library() == anyio_backend
    order: dict[str, list[int]] = {}

    async def handler(item: WorkItem, ctx: HandlerContext) -> bytes:
        n = int(item.payload)
        if n == 7:
            raise TerminalError("seven is poison")
        order.setdefault(item.key or "", []).append(n)
        return item.payload

    async with open_store(tmp_path / "c.db", StoreConfig()) as store:
        await store.enqueue_many(
            [NewItem(topic="t", payload=str(n).encode(), key=f"k{n % 3}") for n in range(30)]
        )
        pipeline = Pipeline(
            store, handler, config=PipelineConfig(partitions=2, poll_interval_s=0.01)
        )
        await run_until_settled(pipeline)
        depth = (await store.metrics(60)).depth
        letters = await store.dead_letters()
    assert pipeline.drained
    assert depth["succeeded"] == 29
    assert [d.reason for d in letters] == [DeadReason.TERMINAL_ERROR]
    for seen in order.values():
        assert seen == sorted(seen)


async def test_submissions_past_capacity_are_rejected(tmp_path: Path, anyio_backend: str) -> None:
    async with open_store(tmp_path / "r.db", StoreConfig()) as store:
        pipeline = Pipeline(store, lambda i, c: None, config=PipelineConfig(queue_capacity=5))
        for _ in range(5):
            await pipeline.submit(NewItem(topic="t", payload=b"x"))
        with pytest.raises(PressureRejected):
            await pipeline.submit(NewItem(topic="t", payload=b"x"))


async def test_outbound_actors_and_handler_timeouts(tmp_path: Path, anyio_backend: str) -> None:
    delivered: dict[str, list[int]] = {}

    class Sink:
        name = "out"

        async def deliver(self, item: WorkItem, result: bytes | None, key: str) -> None:
            delivered.setdefault(item.key or "", []).append(int(item.payload))

    async def handler(item: WorkItem, ctx: HandlerContext) -> bytes:
        if item.payload == b"5":
            await anyio.sleep_forever()  # the watchdog fails it with reason timeout
        await anyio.sleep(0.001)  # the next items await too: none may inherit the timeout
        return item.payload

    config = StoreConfig(retry=RetryPolicy(max_attempts=1))
    async with open_store(tmp_path / "o.db", config) as store:
        await store.enqueue_many(
            [NewItem(topic="t", payload=str(n).encode(), key=f"k{n % 2}") for n in range(12)]
        )
        pipeline = Pipeline(
            store,
            handler,
            sinks=[Sink()],
            config=PipelineConfig(partitions=2, poll_interval_s=0.01, handler_timeout_s=0.05),
        )
        await run_until_settled(pipeline)
        letters = await store.dead_letters()
    assert [d.reason for d in letters] == [DeadReason.TIMEOUT]
    assert delivered == {"k0": [0, 2, 4, 6, 8, 10], "k1": [1, 3, 7, 9, 11]}
    assert pipeline.statistics().worker_restarts == 0
