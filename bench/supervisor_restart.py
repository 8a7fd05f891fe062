"""Supervisor restart latency and start/stop cost, on Trio, with the OTel SDK recording.

Run from the repository root:

    .venv/bin/python bench/supervisor_restart.py [--restarts 10000] [--children 10000]

Measures:
* restart latency: from a child raising to its replacement about to call
  ``task_status.started()``, one crash at a time on an otherwise idle supervisor
  (p50/p90/p99/max; see :func:`restart_latency`, shared with ``bench/otp_restart/run.py``);
* restart throughput: a child that crashes as soon as it has started, back to back;
* start and stop of one supervisor with ``--children`` children.

Telemetry is real: an SDK ``TracerProvider`` with a ``SimpleSpanProcessor`` into an
``InMemorySpanExporter`` and an SDK ``MeterProvider`` with an ``InMemoryMetricReader`` are
injected, so every restart creates, ends and exports a span and adds to a counter.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import trio
import trio.testing
from anyio.abc import TaskStatus
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# Run as a plain script: make the repository's packages importable without installing.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policies import RestartPolicy
from supervisors import ChildSpec, Strategy, Supervisor


class Boom(Exception):
    pass


def providers() -> tuple[TracerProvider, MeterProvider, InMemorySpanExporter, InMemoryMetricReader]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return tracer_provider, meter_provider, exporter, reader


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index]


# A policy that never gives up during the bench: 1000 restarts within 10 ms cannot happen.
BENCH_POLICY = RestartPolicy(max_restarts=1000, period_s=0.01)


async def restart_latency(
    n: int,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    children: int = 1,
    telemetry: bool = True,
) -> list[float]:
    """Seconds from a crash to its replacement started, for ``n`` crashes one at a time.

    The one Garrison restart-latency measurement (``bench/otp_restart/run.py`` runs it next
    to the Erlang/OTP escript, which measures the same interval):

    * t0: the crashing child (the middle one when there are several) reads
      ``time.perf_counter()`` as the last thing before ``raise``;
    * t1: the replacement reads it as the last thing before ``task_status.started()``; with
      several children, the last child in start order, so for ``one_for_all`` the whole
      group is running again.

    Before each crash the bench waits for the replacement and for every task to be blocked,
    so each crash hits an idle supervisor: this is latency, not throughput. ``telemetry``
    injects SDK providers (span + counter recorded per restart); without, the OTel API
    runs with no SDK (no-op), as in a service that configured none.
    """
    kwargs: dict[str, Any] = {}
    exporter: InMemorySpanExporter | None = None
    if telemetry:
        tracer_provider, meter_provider, exporter, _reader = providers()
        kwargs = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    started_at: list[float] = []
    raised_at: list[float] = []
    crash = trio.Event()
    up = trio.Event()
    crashing, last = (children - 1) // 2, children - 1

    def spec(index: int) -> ChildSpec:
        async def child(*, task_status: TaskStatus[Any]) -> None:
            if index == last:
                started_at.append(time.perf_counter())
                up.set()
            task_status.started()
            if index != crashing:
                await trio.sleep_forever()
            await crash.wait()
            raised_at.append(time.perf_counter())
            raise Boom

        return ChildSpec(id=f"worker{index}", start=child)

    sup = Supervisor(
        [spec(i) for i in range(children)],
        strategy,
        policy=BENCH_POLICY,
        name="bench",
        **kwargs,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for i in range(n):
            await up.wait()
            up = trio.Event()
            # Let the supervisor finish the previous restart (end its span) so each crash
            # hits an idle supervisor.
            await trio.testing.wait_all_tasks_blocked()
            crash.set()
            crash = trio.Event()
            if exporter is not None and i % 1000 == 999:
                exporter.clear()  # keep memory flat; export cost is still paid per span
        await up.wait()
        nursery.cancel_scope.cancel()
    assert sup.statistics().restarts_total == n
    # started_at[0] is the first start; restart i's replacement started at started_at[i+1].
    return [started_at[i + 1] - raised_at[i] for i in range(n)]


def latency_summary(latencies: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in microseconds (nearest rank at round(q * (n - 1)))."""
    us = sorted(x * 1e6 for x in latencies)
    return {
        "p50_us": percentile(us, 0.50),
        "p90_us": percentile(us, 0.90),
        "p99_us": percentile(us, 0.99),
        "max_us": us[-1],
        "mean_us": statistics.fmean(us),
    }


async def restart_throughput(n: int) -> float:
    tracer_provider, meter_provider, _exporter, _reader = providers()
    done = trio.Event()
    count = 0

    async def child(*, task_status: TaskStatus[Any]) -> None:
        nonlocal count
        task_status.started()
        count += 1
        if count > n:
            done.set()
            await trio.sleep_forever()
        raise Boom

    sup = Supervisor(
        [ChildSpec(id="worker", start=child)],
        policy=BENCH_POLICY,
        name="bench",
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    async with trio.open_nursery() as nursery:
        t0 = time.perf_counter()
        await nursery.start(sup.run)
        await done.wait()
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return elapsed


async def start_stop(n: int) -> tuple[float, float]:
    tracer_provider, meter_provider, _exporter, _reader = providers()

    async def child(*, task_status: TaskStatus[Any]) -> None:
        task_status.started()
        await trio.sleep_forever()

    sup = Supervisor(
        [ChildSpec(id=f"c{i}", start=child) for i in range(n)],
        name="bench",
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    async with trio.open_nursery() as nursery:
        t0 = time.perf_counter()
        await nursery.start(sup.run)
        t1 = time.perf_counter()
        assert sup.statistics().children_running == n
        nursery.cancel_scope.cancel()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=10_000)
    parser.add_argument("--children", type=int, default=10_000)
    args = parser.parse_args()

    print(
        f"# {platform.python_implementation()} {platform.python_version()}, trio {trio.__version__}, nproc {os.cpu_count()}"
    )
    print(
        "# telemetry: OTel SDK, SimpleSpanProcessor -> InMemorySpanExporter, InMemoryMetricReader"
    )

    trio.run(restart_latency, 500)  # warm-up
    gc.collect()
    summary = latency_summary(trio.run(restart_latency, args.restarts))
    print(
        f"restart latency over {args.restarts} restarts: p50 {summary['p50_us']:.1f} us, "
        f"p90 {summary['p90_us']:.1f} us, p99 {summary['p99_us']:.1f} us, "
        f"max {summary['max_us']:.1f} us, mean {summary['mean_us']:.1f} us"
    )

    elapsed = trio.run(restart_throughput, args.restarts)
    print(
        f"restart throughput: {args.restarts} back-to-back restarts in {elapsed:.3f} s "
        f"= {args.restarts / elapsed:,.0f} restarts/s"
    )

    start, stop = trio.run(start_stop, args.children)
    print(
        f"start {args.children} children: {start:.3f} s = {args.children / start:,.0f} children/s; "
        f"stop (reverse order): {stop:.3f} s = {args.children / stop:,.0f} children/s"
    )


if __name__ == "__main__":
    main()
