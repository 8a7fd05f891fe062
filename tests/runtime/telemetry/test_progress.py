from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from runtime.store import NewItem, StoreConfig, WorkItem, open_store
from runtime.telemetry import (
    Progress,
    capture_telemetry,
    format_progress,
    parse_progress,
    pressure_level_gauge,
    run_progress,
)
from runtime.worker import TerminalError, Worker, WorkerConfig, worker_config

KEYS = [
    "worker",
    "processed",
    "processed_per_min",
    "avg_queue_latency_ms",
    "lease_contention",
    "retries",
    "dead_letters",
    "stale",
    "in_flight",
    "pressure",
]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_snapshot_figures_and_stable_line() -> None:
    clock = Clock()
    progress = Progress("w1", clock=clock)
    progress.start()
    for outcome in ("succeeded", "succeeded", "retry_scheduled", "dead_lettered", "stale"):
        progress.settled(outcome, 0.010)
    progress.settled("succeeded", None)
    progress.contended(2)
    clock.now += 30
    with capture_telemetry():
        line = format_progress(progress.snapshot(in_flight=3))
    assert line == (
        "[progress] worker=w1 processed=6 processed_per_min=12.0 avg_queue_latency_ms=10.0 "
        "lease_contention=2 retries=1 dead_letters=1 stale=1 in_flight=3 pressure=normal"
    )
    assert list(parse_progress(line)) == KEYS
    clock.now += 60
    again = parse_progress(format_progress(progress.snapshot(pressure="critical")))
    assert again["processed_per_min"] == "0.0" and again["avg_queue_latency_ms"] == "0.0"
    assert again["processed"] == "6" and again["pressure"] == "critical"
    with pytest.raises(ValueError, match="not a"):
        parse_progress("hello")


def test_snapshot_without_start_and_pressure_from_gauge() -> None:
    progress = Progress("w", clock=Clock())
    with capture_telemetry():
        pressure_level_gauge("intake", "elevated")
        assert parse_progress(format_progress(progress.snapshot()))["pressure"] == "elevated"


async def test_run_progress_emits_at_the_interval(autojump_clock: trio.testing.MockClock) -> None:
    lines: list[str] = []
    progress = Progress("w", clock=trio.current_time)
    with pytest.raises(ValueError, match="positive"):
        await run_progress(progress, 0)
    with trio.move_on_after(10.5):
        await run_progress(progress, 2.0, in_flight=lambda: 1, emit=lines.append)
    assert len(lines) == 5 and all("in_flight=1" in line for line in lines)


async def test_worker_prints_progress_lines(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock)
    lines: list[str] = []

    async def handler(item: WorkItem) -> None:
        await trio.sleep(1)
        if item.payload == b"0":
            raise TerminalError("no")

    async with open_store(
        tmp_path / "q.db", StoreConfig(), clock=lambda: 1e9 + clock.current_time()
    ) as store:
        await store.enqueue_many([NewItem(topic="t", payload=str(n).encode()) for n in range(6)])
        worker = Worker(
            store,
            handler,
            WorkerConfig(concurrency=1, drain=True, poll_interval_s=0.5, progress_interval_s=2.5),
            on_progress=lines.append,
        )
        await worker.run()
    assert len(lines) >= 2
    last = parse_progress(lines[-1])
    assert list(last) == KEYS
    assert int(last["processed"]) >= 4 and last["dead_letters"] == "1"
    assert parse_progress(worker.progress_line())["processed"] == "6"
    with pytest.raises(Exception, match="progress_interval_s"):
        worker_config(progress_interval_s=0)
