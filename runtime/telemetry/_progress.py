"""``[progress]`` lines: a worker's throughput and health, machine-parseable and stable.

A line is ``[progress]`` followed by ``key=value`` pairs in a fixed order (new keys are only
ever appended)::

    [progress] worker=host:12:ab12cd processed=120 processed_per_min=360.0
    avg_queue_latency_ms=4.2 lease_contention=0 retries=3 dead_letters=1 stale=0
    in_flight=2 pressure=normal

(on one line). Counts are totals since the worker started; ``processed_per_min`` and
``avg_queue_latency_ms`` cover the interval since the previous line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Final

import anyio
import msgspec

from runtime.telemetry._registry import current_instruments

__all__ = [
    "PROGRESS_PREFIX",
    "Progress",
    "ProgressSnapshot",
    "format_progress",
    "parse_progress",
    "pressure_level_now",
    "run_progress",
]

PROGRESS_PREFIX: Final = "[progress]"
_NAMES: Final = {0: "normal", 1: "elevated", 2: "critical"}
_PAIR: Final = re.compile(r"(\S+?)=(\S*)")


class ProgressSnapshot(msgspec.Struct, frozen=True):
    """The figures of one progress line (field order is the line's key order)."""

    worker: str
    processed: int
    processed_per_min: float
    avg_queue_latency_ms: float
    lease_contention: int
    retries: int
    dead_letters: int
    stale: int
    in_flight: int
    pressure: str


def pressure_level_now() -> str:
    """The highest pressure level any channel reported (``normal`` when none did)."""
    levels = current_instruments().levels()
    return _NAMES.get(max(levels.values(), default=0), "normal")


class Progress:
    """Counts what a worker did, and turns it into snapshots at each interval.

    Args:
        worker: the name on every line (the lease owner).
        clock: a monotonic clock in seconds (injected in tests).
    """

    def __init__(self, worker: str, *, clock: Callable[[], float]) -> None:
        self.worker = worker
        self._clock = clock
        self._processed = self._retries = self._dead = self._stale = self._contention = 0
        self._window_start: float | None = None
        self._window_processed = 0
        self._latency_sum = 0.0
        self._latency_n = 0

    def start(self) -> None:
        """Begin the first interval now (otherwise it begins at the first snapshot)."""
        self._window_start = self._clock()

    def settled(self, outcome: str, queue_latency_s: float | None = None) -> None:
        """Count one finished attempt (``succeeded``, ``retry_scheduled``,
        ``dead_lettered`` or ``stale``) and the time it waited in the queue."""
        self._processed += 1
        self._window_processed += 1
        if outcome == "retry_scheduled":
            self._retries += 1
        elif outcome == "dead_lettered":
            self._dead += 1
        elif outcome == "stale":
            self._stale += 1
        if queue_latency_s is not None:
            self._latency_sum += max(queue_latency_s, 0.0)
            self._latency_n += 1

    def contended(self, n: int = 1) -> None:
        """Count ``n`` waits on a busy database."""
        self._contention += n

    def snapshot(self, *, in_flight: int = 0, pressure: str | None = None) -> ProgressSnapshot:
        """The figures now; starts a new interval for the per-interval figures."""
        now = self._clock()
        start = now if self._window_start is None else self._window_start
        elapsed = max(now - start, 1e-9)
        snap = ProgressSnapshot(
            worker=self.worker,
            processed=self._processed,
            processed_per_min=round(self._window_processed * 60.0 / elapsed, 1),
            avg_queue_latency_ms=round(self._latency_sum * 1000.0 / self._latency_n, 1)
            if self._latency_n
            else 0.0,
            lease_contention=self._contention,
            retries=self._retries,
            dead_letters=self._dead,
            stale=self._stale,
            in_flight=in_flight,
            pressure=pressure if pressure is not None else pressure_level_now(),
        )
        self._window_start = now
        self._window_processed = 0
        self._latency_sum, self._latency_n = 0.0, 0
        return snap


def format_progress(snapshot: ProgressSnapshot) -> str:
    """The ``[progress] key=value ...`` line of a snapshot."""
    pairs = msgspec.structs.asdict(snapshot)
    return PROGRESS_PREFIX + "".join(f" {key}={value}" for key, value in pairs.items())


def parse_progress(line: str) -> dict[str, str]:
    """The ``key: value`` pairs of a progress line.

    Raises:
        ValueError: the line is not a progress line.
    """
    line = line.strip()
    if not line.startswith(PROGRESS_PREFIX):
        raise ValueError("not a [progress] line")
    return dict(_PAIR.findall(line[len(PROGRESS_PREFIX) :]))


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def run_progress(
    progress: Progress,
    interval_s: float,
    *,
    in_flight: Callable[[], int] = lambda: 0,
    emit: Callable[[str], None] = _stderr,
) -> None:
    """Emit a progress line every ``interval_s`` seconds until cancelled."""
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    while True:
        await anyio.sleep(interval_s)
        emit(format_progress(progress.snapshot(in_flight=in_flight())))
