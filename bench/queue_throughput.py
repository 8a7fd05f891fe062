"""Durable queue throughput: enqueue, lease+ack, and end to end, on a real SQLite file.

Usage: python bench/queue_throughput.py [--items 20000] [--batch 100]

For each synchronous level (NORMAL, FULL) and each consumer count (1, 4) it prints items/s
and per-item latency percentiles (enqueue to acknowledged, for end to end). Payloads are
200 bytes. Consumers lease ``--batch`` items at a time and acknowledge them with
``ack_many``; concurrent callers share transactions through the group-commit writer.
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

import trio.lowlevel

from runtime.store import NewItem, SQLiteStore, StoreConfig, Synchronous, open_store

PAYLOAD = os.urandom(100).hex().encode()  # 200 bytes


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(name: str, items: int, seconds: float, latencies: list[float] | None = None) -> str:
    text = f"{name:<44} {items / seconds:>10,.0f} items/s"
    if latencies:
        text += (
            f"   p50 {pct(latencies, 0.50) * 1e3:7.2f} ms"
            f"   p99 {pct(latencies, 0.99) * 1e3:7.2f} ms"
        )
    return text


async def enqueue_all(store: SQLiteStore, n: int, producers: int, chunk: int) -> None:
    async def produce(count: int) -> None:
        for start in range(0, count, chunk):
            size = min(chunk, count - start)
            await store.enqueue_many([NewItem(topic="bench", payload=PAYLOAD) for _ in range(size)])

    async with trio.open_nursery() as nursery:
        for p in range(producers):
            nursery.start_soon(produce, n // producers + (1 if p < n % producers else 0))


async def consume(
    store: SQLiteStore, n: int, consumers: int, batch: int, timed: bool
) -> list[float]:
    done = 0
    latencies: list[float] = []

    async def consumer(name: str) -> None:
        nonlocal done
        while done < n:
            items = await store.lease(name, batch, 60.0)
            if not items:
                await trio.lowlevel.checkpoint()
                continue
            outcomes = await store.ack_many([(i.id, i.lease_token or "") for i in items])
            assert not any(outcomes)
            now = time.time()
            done += len(items)
            if timed:
                # created_at is the store's wall clock at the enqueue commit.
                latencies.extend(now - i.created_at for i in items)

    async with trio.open_nursery() as nursery:
        for c in range(consumers):
            nursery.start_soon(consumer, f"c{c}")
    return latencies


async def run(sync: Synchronous, consumers: int, n: int, batch: int) -> list[str]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        config = StoreConfig(synchronous=sync)
        async with open_store(Path(tmp) / "bench.db", config) as store:
            t = time.perf_counter()
            await enqueue_all(store, n, producers=consumers, chunk=batch)
            out.append(
                line(
                    f"{sync.value:<6} enqueue   ({consumers} producer(s))",
                    n,
                    time.perf_counter() - t,
                )
            )
            t = time.perf_counter()
            await consume(store, n, consumers, batch, False)
            out.append(
                line(
                    f"{sync.value:<6} lease+ack ({consumers} consumer(s))",
                    n,
                    time.perf_counter() - t,
                )
            )

        async with open_store(Path(tmp) / "e2e.db", config) as store:
            latencies: list[float] = []
            t = time.perf_counter()

            async def producer_side() -> None:
                await enqueue_all(store, n, producers=consumers, chunk=batch)

            async def consumer_side() -> None:
                latencies.extend(await consume(store, n, consumers, batch, True))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(producer_side)
                nursery.start_soon(consumer_side)
            elapsed = time.perf_counter() - t
            out.append(
                line(f"{sync.value:<6} end-to-end ({consumers} consumer(s))", n, elapsed, latencies)
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    print(
        f"# {platform.node()} {os.cpu_count()} cpu, Python {platform.python_version()}, "
        f"{args.items} items of {len(PAYLOAD)} bytes, batch {args.batch}"
    )
    for sync in (Synchronous.NORMAL, Synchronous.FULL):
        for consumers in (1, 4):
            for text in trio.run(run, sync, consumers, args.items, args.batch):
                print(text, flush=True)


if __name__ == "__main__":
    main()
