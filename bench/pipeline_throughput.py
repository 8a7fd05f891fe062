"""End-to-end durable pipeline throughput vs the queue's own end-to-end figure.

Usage: python bench/pipeline_throughput.py [--items 20000]

Both runs use a fresh SQLite file (NORMAL), 200-byte payloads and 4 consumers: the queue
figure is bench/queue_throughput.py's end-to-end loop (lease 100, ack_many); the pipeline
figure is a supervised Pipeline with 4 partitions and a no-op handler, items enqueued up
front, measured from start until every item is acknowledged.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from queue_throughput import PAYLOAD, consume, enqueue_all

from runtime.pipeline import HandlerContext, Pipeline, PipelineConfig
from runtime.store import StoreConfig, WorkItem, open_store


async def noop(item: WorkItem, ctx: HandlerContext) -> None:
    return None


async def queue_e2e(db: Path, n: int) -> float:
    async with open_store(db, StoreConfig()) as store:
        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(enqueue_all, store, n, 4, 100)
            nursery.start_soon(consume, store, n, 4, 100, False)
        return n / (time.perf_counter() - t)


async def pipeline_e2e(db: Path, n: int) -> float:
    async with open_store(db, StoreConfig()) as store:
        config = PipelineConfig(partitions=4, inbox_size=64, intake_size=256, lease_batch=100)
        pipeline = Pipeline(store, noop, config=config)
        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(enqueue_all, store, n, 4, 100)
            await nursery.start(pipeline.run)
            while pipeline.statistics().succeeded < n:
                await trio.sleep(0.01)
            elapsed = time.perf_counter() - t
            pipeline.stop()
        return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=20_000)
    args = parser.parse_args()
    print(
        f"# {platform.node()} {os.cpu_count()} cpu, Python {platform.python_version()}, "
        f"{args.items} items of {len(PAYLOAD)} bytes, NORMAL, 4 consumers"
    )
    with tempfile.TemporaryDirectory() as tmp:
        queue = trio.run(queue_e2e, Path(tmp) / "q.db", args.items)
        pipe = trio.run(pipeline_e2e, Path(tmp) / "p.db", args.items)
    print(f"queue end-to-end     {queue:>10,.0f} items/s")
    print(f"pipeline end-to-end  {pipe:>10,.0f} items/s   ({pipe / queue:.0%} of the queue)")


if __name__ == "__main__":
    main()
