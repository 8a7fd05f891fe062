"""Soak: offer the pipeline twice the rate it can sustain for 30 s of real time.

Asserts the bound (queue depth never above capacity, in-memory items never above the
pipeline's capacity), flat memory after warm-up, and an exact reconciliation: every
accepted item ends succeeded or dead-lettered (shed included); refused ones were told so.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import trio

from policies import PressurePolicy
from runtime._errors import PressureRejected
from runtime.pipeline import HandlerContext, Pipeline, PipelineConfig
from runtime.store import NewItem, StoreConfig, WorkItem, open_store

DURATION_S = 30.0
WARM_UP_S = 8.0
HANDLER_S = 0.004  # 4 partitions -> at most ~1,000 items/s
OFFERED_PER_S = 2000
# Many lanes, so that the writer's group commit carries many submissions per transaction:
# with four, each lane waited for its own commit and a loaded machine offered less than the
# pipeline sustains (the overload this soak is about never happened).
PRODUCERS = 32
CAPACITY = 2000


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


async def slow(item: WorkItem, ctx: HandlerContext) -> None:
    await trio.sleep(0 if ctx.degraded else HANDLER_S)


@pytest.mark.slow
async def test_twice_the_sustainable_rate_stays_bounded_and_reconciles(tmp_path: Path) -> None:
    config = PipelineConfig(
        partitions=4,
        inbox_size=16,
        intake_size=64,
        lease_s=10.0,
        poll_interval_s=0.02,
        queue_capacity=CAPACITY,
        pressure=PressurePolicy(),
        pressure_interval_s=0.1,
        drain_timeout_s=20.0,
    )
    accepted = 0
    rejected = 0
    max_depth = max_in_memory = 0
    rss_after_warm_up = 0
    # A small page cache fills during warm-up: what is left to grow is the runtime itself.
    async with open_store(tmp_path / "soak.db", StoreConfig(cache_mib=2)) as store:
        pipeline = Pipeline(store, slow, config=config)
        async with trio.open_nursery() as nursery:
            await nursery.start(pipeline.run)
            start = trio.current_time()
            stop_at = start + DURATION_S

            async def produce(lane: int) -> None:
                nonlocal rejected, accepted
                n = 0
                while (now := trio.current_time()) < stop_at:
                    due = int((now - start) * OFFERED_PER_S / PRODUCERS)
                    while n < due:
                        n += 1
                        item = NewItem(
                            topic="soak", payload=b"x" * 64, key=f"{lane}-{n % 50}", priority=n % 3
                        )
                        try:
                            await pipeline.submit(item)
                            accepted += 1
                        except PressureRejected:
                            rejected += 1
                    await trio.sleep(0.01)

            async def observe() -> None:
                nonlocal max_depth, max_in_memory, rss_after_warm_up
                while trio.current_time() < stop_at:
                    stats = pipeline.statistics()
                    max_depth = max(max_depth, pipeline.queue_pressure.depth)
                    max_in_memory = max(max_in_memory, stats.in_flight)
                    if not rss_after_warm_up and trio.current_time() - start >= WARM_UP_S:
                        gc.collect()
                        rss_after_warm_up = rss_bytes()
                    await trio.sleep(0.05)

            async with trio.open_nursery() as offered:
                offered.start_soon(observe)
                for lane in range(PRODUCERS):
                    offered.start_soon(produce, lane)
            # Stop offering, let the backlog finish, then stop.
            with trio.fail_after(120):
                while True:
                    depth = await store.depth()
                    if depth["enqueued"] + depth["retry_scheduled"] + depth["leased"] == 0:
                        break
                    await trio.sleep(0.2)
            pipeline.stop()
        gc.collect()
        rss_end = rss_bytes()
        metrics = await store.metrics(600)
    offered = accepted + rejected
    assert offered >= OFFERED_PER_S * DURATION_S * 0.5, "the producers fell far behind"
    assert pipeline.statistics().pressure_transitions > 0, "the overload never met pressure"
    assert max_depth <= CAPACITY
    assert max_in_memory <= pipeline.statistics().capacity
    assert rss_end <= rss_after_warm_up * 1.10, (rss_after_warm_up, rss_end)
    finished = metrics.depth["succeeded"] + metrics.depth["dead_lettered"]
    assert finished == accepted
    assert metrics.depth["enqueued"] == metrics.depth["leased"] == 0
    assert pipeline.drained
