"""End-to-end durable pipeline throughput vs the queue's own end-to-end figure.

Usage: python bench/pipeline_throughput.py [--items 20000] [--rounds 5]

Every run uses a fresh SQLite file (NORMAL), 200-byte payloads, 4 producers enqueueing
while the consumers work: the queue figure is bench/queue_throughput.py's end-to-end loop
(4 consumers, lease 100, ack_many); the pipeline figure is a supervised Pipeline with 4
worker partitions and a no-op handler, measured from start until every item is
acknowledged. Queue and pipeline runs alternate round by round (this machine's load
drifts), and the medians are compared.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
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
from runtime.tuning import DEFAULT_SWITCH_INTERVAL_S, tune_interpreter


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
        config = PipelineConfig(
            partitions=4, inbox_size=128, intake_size=512, lease_batch=200, lease_concurrency=3
        )
        pipeline = Pipeline(store, noop, config=config)
        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(enqueue_all, store, n, 4, 100)
            await nursery.start(pipeline.run)
            while pipeline.statistics().succeeded < n:
                await trio.sleep(0.02)
            elapsed = time.perf_counter() - t
            pipeline.stop()
        return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(
        f"# {platform.node()} {os.cpu_count()} cpu, Python {platform.python_version()}, "
        f"{args.items} items of {len(PAYLOAD)} bytes, NORMAL, 4 workers, "
        f"median of {args.rounds} interleaved rounds"
    )
    python_default = sys.getswitchinterval()
    intervals = {
        f"switch {python_default * 1000:g} ms (Python)": python_default,
        f"switch {DEFAULT_SWITCH_INTERVAL_S * 1000:g} ms (garrison)": DEFAULT_SWITCH_INTERVAL_S,
    }
    runs: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in intervals}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, interval in intervals.items():
                tune_interpreter(interval)
                queue, pipe = runs[name]
                queue.append(trio.run(queue_e2e, Path(tmp) / f"q{r}{len(queue)}.db", args.items))
                pipe.append(trio.run(pipeline_e2e, Path(tmp) / f"p{r}{len(pipe)}.db", args.items))
    tune_interpreter(python_default)
    for name, (queue, pipe) in runs.items():
        q, p = statistics.median(queue), statistics.median(pipe)
        rounds = ", ".join(f"{b / a:.0%}" for a, b in zip(queue, pipe, strict=True))
        print(f"{name}")
        print(f"  queue end-to-end     {q:>10,.0f} items/s   (rounds: {_fmt(queue)})")
        print(f"  pipeline end-to-end  {p:>10,.0f} items/s   (rounds: {_fmt(pipe)})")
        print(f"  pipeline / queue     {p / q:>10.0%}           (per round: {rounds})")


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values)


if __name__ == "__main__":
    main()
