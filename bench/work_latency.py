"""Enqueue-to-handler-start latency of the engine, at a steady load below its capacity.

Usage: python bench/work_latency.py [--rate 2000] [--seconds 5] [--concurrency 8]

A producer enqueues one item at a time at ``--rate`` items/s (each payload carries the wall
time just before its ``enqueue`` call); a ``runtime.worker.Worker`` (the one engine, as
``garrison work`` runs it) with an async no-op handler records, at the handler's start, how
long ago that was. Two producers are measured, one after the other, on fresh SQLite files:

- in process: the producer is a task in the worker's own event loop, sharing its store (the
  engine is woken by the enqueue itself);
- another process: the producer is a separate Python process with its own store handle on
  the same file (the engine learns of items by its idle poll, ``--poll-interval``).

Choose ``--rate`` at about half of the sustainable rate (bench/work_cli.py measures it).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import msgspec
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.store import NewItem, StoreConfig, WorkItem, open_store
from runtime.worker import Worker, WorkerConfig

ROOT = Path(__file__).resolve().parents[1]

PRODUCER = textwrap.dedent(
    """
    import sys, time, msgspec, trio
    sys.path.insert(0, {root!r})
    from runtime.store import NewItem, StoreConfig, open_store

    async def main(db, rate, seconds):
        async with open_store(db, StoreConfig()) as store:
            start = time.perf_counter()
            for i in range(int(rate * seconds)):
                await trio.sleep_until(trio.current_time() + max(0.0, start + i / rate - time.perf_counter()))
                await store.enqueue(NewItem(topic="lat", payload=msgspec.json.encode(time.time())))

    trio.run(main, sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))
    """
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def measure(db: Path, args: argparse.Namespace, *, in_process: bool) -> list[float]:
    latencies: list[float] = []
    total = int(args.rate * args.seconds)

    async def handler(item: WorkItem) -> None:
        latencies.append(time.time() - msgspec.json.decode(item.payload))

    async def produce(store: object) -> None:
        start = time.perf_counter()
        for i in range(total):
            await trio.sleep(max(0.0, start + i / args.rate - time.perf_counter()))
            now = msgspec.json.encode(time.time())
            await store.enqueue(NewItem(topic="lat", payload=now))  # type: ignore[attr-defined]

    async with open_store(db, StoreConfig()) as store:
        config = WorkerConfig(concurrency=args.concurrency, poll_interval_s=args.poll_interval)
        worker = Worker(store, handler, config)
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            if in_process:
                await produce(store)
            else:
                script = PRODUCER.format(root=str(ROOT))
                cmd = [sys.executable, "-c", script, str(db), str(args.rate), str(args.seconds)]
                await trio.to_thread.run_sync(lambda: subprocess.run(cmd, check=True))
            with trio.move_on_after(10):
                while len(latencies) < total:
                    await trio.sleep(0.01)
            worker.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    args = parser.parse_args()
    print(
        f"# {platform.node()} {os.cpu_count()} cpu, Python {platform.python_version()}, "
        f"{args.rate:,.0f} items/s for {args.seconds} s, concurrency {args.concurrency}, "
        f"poll {args.poll_interval * 1e3:.0f} ms"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for in_process in (True, False):
            db = Path(tmp) / f"lat-{in_process}.db"
            lat = trio.run(lambda: measure(db, args, in_process=in_process))  # noqa: B023
            name = "in-process producer" if in_process else "producer in another process"
            print(
                f"{name:<30} n={len(lat):>6}  p50 {pct(lat, 0.5) * 1e3:7.2f} ms  "
                f"p90 {pct(lat, 0.9) * 1e3:7.2f} ms  p99 {pct(lat, 0.99) * 1e3:7.2f} ms  "
                f"max {max(lat, default=float('nan')) * 1e3:7.2f} ms"
            )


if __name__ == "__main__":
    main()
