"""Telemetry overhead: the end-to-end queue benchmark with telemetry off, with the SDK and a
no-op exporter, and with the in-memory exporter, in one run.

Usage: python bench/telemetry_overhead.py [--items 10000] [--rounds 3] [--batch 100]
       [--workloads "queue e2e,worker e2e,pipeline e2e"] [--no-hot-path]
       [--modes off,sdk+noop,sdk+memory,noop@10%]

Three workloads, each run in every mode, modes interleaved round by round (the machine is
shared, so the median of the rounds is reported):

- ``queue e2e``: bench/queue_throughput.py's end to end (producers ``enqueue_many`` while
  consumers ``lease`` + ``ack_many``): one send span per enqueue call, counters.
- ``worker e2e``: items enqueued, then a ``runtime.worker.Worker`` (no-op handler,
  concurrency 16) drains them: a process span, counters and two histograms per item,
  plus the send spans.
- ``pipeline e2e``: bench/pipeline_throughput.py's supervised ``Pipeline`` (4 partitions,
  no-op handler) draining while 4 producers enqueue: per item as the worker, but acks are
  batched, so the per-item share of telemetry is larger.

Modes: ``off`` (no SDK: the OpenTelemetry API's no-ops), ``sdk+noop`` (SDK tracer with a
BatchSpanProcessor into an exporter that drops, SDK meter with a reader that is never
collected), ``sdk+memory`` (SimpleSpanProcessor into an InMemorySpanExporter, and an
InMemoryMetricReader), ``noop@10%`` (as ``sdk+noop``, 10 % of traces sampled, decided at
enqueue: the items' process spans follow it; metrics unchanged), and, only when asked for
with ``--modes``, ``noop@0%`` (metrics and the required spans only).

Besides throughput, each end-to-end line gives the process CPU time per item (all threads):
on a shared machine it moves much less than the wall clock when other jobs run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_throughput import pipeline_e2e
from queue_throughput import PAYLOAD, consume, enqueue_all

from runtime.store import NewItem, StoreConfig, WorkItem, open_store
from runtime.telemetry import TelemetryConfig, TelemetryHandle, configure_telemetry
from runtime.worker import Worker, WorkerConfig

MODES: dict[str, Callable[[], TelemetryHandle | None]] = {
    "off": lambda: None,
    "sdk+noop": lambda: configure_telemetry(TelemetryConfig(exporter="noop", set_global=False)),
    "sdk+memory": lambda: configure_telemetry(TelemetryConfig(exporter="memory", set_global=False)),
    "noop@10%": lambda: configure_telemetry(
        TelemetryConfig(exporter="noop", set_global=False, sample_ratio=0.1)
    ),
    "noop@0%": lambda: configure_telemetry(
        TelemetryConfig(exporter="noop", set_global=False, sample_ratio=0.0)
    ),
}
DEFAULT_MODES = ("off", "sdk+noop", "sdk+memory", "noop@10%")


async def queue_e2e(path: Path, n: int, batch: int, consumers: int = 4) -> float:
    async with open_store(path, StoreConfig()) as store:
        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(enqueue_all, store, n, consumers, batch)
            nursery.start_soon(consume, store, n, consumers, batch, False)
        return n / (time.perf_counter() - t)


async def worker_e2e(path: Path, n: int, batch: int) -> float:
    async def handler(item: WorkItem) -> None:
        return None

    async with open_store(path, StoreConfig()) as store:
        t = time.perf_counter()
        for start in range(0, n, batch):
            size = min(batch, n - start)
            await store.enqueue_many([NewItem(topic="bench", payload=PAYLOAD)] * size)
        worker = Worker(
            store,
            handler,
            WorkerConfig(concurrency=16, lease_batch=64, drain=True, poll_interval_s=0.01),
        )
        await worker.run()
        assert worker.statistics().succeeded == n
        return n / (time.perf_counter() - t)


WORKLOADS = ("queue e2e", "worker e2e", "pipeline e2e")


def run_workload(workload: str, db: Path, n: int, batch: int) -> float:
    """Run one of :data:`WORKLOADS` on a fresh database; items per second."""
    if workload == "pipeline e2e":
        return trio.run(pipeline_e2e, db, n)
    fn = queue_e2e if workload == "queue e2e" else worker_e2e
    return trio.run(fn, db, n, batch)


def measure(mode: str, workload: str, n: int, batch: int) -> tuple[float, float]:
    """Items per second and process CPU µs per item of one run."""
    handle = MODES[mode]()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cpu = time.process_time()
            rate = run_workload(workload, Path(tmp) / "bench.db", n, batch)
            return rate, (time.process_time() - cpu) / n * 1e6
    finally:
        if handle is not None:
            if handle.span_exporter is not None and workload != "queue e2e":
                assert handle.span_exporter.get_finished_spans(), "the SDK recorded nothing"
            handle.shutdown()


def hot_path_us(mode: str, n: int = 20_000, repeats: int = 3) -> tuple[float, float]:
    """Telemetry's own cost, without the queue: µs per handled item (what the worker does
    per item: process span, the ack's settle event, settle metrics; items carry the context
    of 200 enqueue calls made in the same mode) and µs per 100-item enqueue call (send span
    + context injection).

    The best of ``repeats`` runs, each timed in chunks smaller than the span queue with
    the exporter flushed between them (untimed): a full batch queue would drop spans and
    log each drop, which no exporter that keeps up ever does.
    """
    from runtime.store import ItemState
    from runtime.telemetry import enqueue_span, process_span, settle_span, settled

    item = WorkItem(
        id="0" * 32,
        seq=1,
        queue="default",
        topic="bench",
        key=None,
        priority=0,
        payload=b"",
        sha256="",
        idempotency_key=None,
        state=ItemState.LEASED,
        attempt=1,
        max_attempts=5,
        created_at=0.0,
        available_at=0.0,
        updated_at=0.0,
        correlation_id=None,
        trace_context=None,
        last_error=None,
        lease_owner=None,
        lease_token="t",
        lease_expires_at=None,
        replay_of=None,
    )
    batch = [NewItem(topic="bench", payload=PAYLOAD)] * 100

    def enqueued_items() -> list[WorkItem]:
        # As the queue hands them out: each carries the context its enqueue call injected
        # (sampled or not, as the mode's sampler decided per call), so the process spans
        # follow the enqueue's decision as they do end to end.
        found: list[WorkItem] = []
        for _ in range(200):
            with enqueue_span(batch) as traced:
                found.extend(
                    msgspec.structs.replace(item, trace_context=new.trace_context) for new in traced
                )
        return found

    def handle_items(count: int) -> None:
        for _ in range(count):
            leased = next(feed)
            with process_span(leased, owner="w"):
                with settle_span("ack", item_id=leased.id):
                    pass
                settled(leased, "succeeded", duration_s=0.001, queue_latency_s=0.01)

    def enqueue_calls(count: int) -> None:
        for _ in range(count):
            with enqueue_span(batch):
                pass

    def timed(run: Callable[[int], None], count: int, handle: TelemetryHandle | None) -> float:
        chunk, spent = 500, 0.0
        for start in range(0, count, chunk):
            t = time.perf_counter()
            run(min(chunk, count - start))
            spent += time.perf_counter() - t
            if handle is not None:
                handle.force_flush()
        return spent / count * 1e6

    per_item = per_call = float("inf")
    for _ in range(repeats):
        handle = MODES[mode]()
        try:
            feed = itertools.cycle(enqueued_items())
            per_item = min(per_item, timed(handle_items, n, handle))
            per_call = min(per_call, timed(enqueue_calls, n // 10, handle))
        finally:
            if handle is not None:
                handle.shutdown()
    return per_item, per_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated, of: {', '.join(WORKLOADS)}",
    )
    parser.add_argument("--no-hot-path", action="store_true", help="skip the hot-path timing")
    parser.add_argument(
        "--modes", default=",".join(DEFAULT_MODES), help=f"comma-separated, of: {', '.join(MODES)}"
    )
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",")]
    if "off" not in modes or set(modes) - set(MODES):
        parser.error(f"modes must include off and be among: {', '.join(MODES)}")
    workloads = [w.strip() for w in args.workloads.split(",")]
    if unknown := set(workloads) - set(WORKLOADS):
        parser.error(f"unknown workloads: {sorted(unknown)}")
    print(
        f"# {os.cpu_count()} cpu, Python {platform.python_version()}, {args.items} items of "
        f"{len(PAYLOAD)} bytes, batch {args.batch}, median of {args.rounds} interleaved rounds"
    )
    for mode in modes if not args.no_hot_path else ():
        per_item, per_call = hot_path_us(mode)
        print(
            f"hot path     {mode:<11} {per_item:6.1f} us per handled item"
            f"   {per_call:6.1f} us per 100-item enqueue call",
            flush=True,
        )
    for workload in workloads:
        results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
        for _ in range(args.rounds):
            for mode in modes:
                results[mode].append(measure(mode, workload, args.items, args.batch))
        base = statistics.median(rate for rate, _ in results["off"])
        base_cpu = statistics.median(cpu for _, cpu in results["off"])
        for mode, values in results.items():
            rate = statistics.median(r for r, _ in values)
            cpu = statistics.median(c for _, c in values)
            print(
                f"{workload:<12} {mode:<11} {rate:>9,.0f} items/s"
                f"   {100 * (1 - rate / base):+6.1f} % cost vs off"
                f"   cpu {cpu:5.0f} us/item {100 * (cpu / base_cpu - 1):+6.1f} %"
                f"   (rounds: {', '.join(f'{r:,.0f}' for r, _ in values)})",
                flush=True,
            )


if __name__ == "__main__":
    main()
