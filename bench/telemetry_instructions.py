"""Telemetry overhead in instructions per item, counted by valgrind (callgrind).

Usage: python bench/telemetry_instructions.py [--workloads "pipeline e2e,worker e2e"]
       [--small 1000] [--large 3000]

Wall-clock and CPU timings on a shared machine move by tens of percent; instruction counts
repeat to within about 1 %. Each workload runs in a child process under
``valgrind --tool=callgrind`` twice per mode, with ``--small`` and ``--large`` items; the
difference divided by the difference in items is the cost per item, without start-up and
set-up. Valgrind runs one thread at a time, which would starve a batch span processor's
export thread, so the traced modes export through the in-memory exporter (a simple
processor, on the thread that ends the span).

Modes: ``off`` (no SDK), ``traced`` (SDK, every trace kept), ``sampled 10%``,
``sampled 0%`` (metrics and the required spans only).
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from telemetry_overhead import WORKLOADS, run_workload

from runtime.telemetry import TelemetryConfig, configure_telemetry

RATIOS: dict[str, float | None] = {
    "off": None,
    "traced": 1.0,
    "sampled 10%": 0.1,
    "sampled 0%": 0.0,
}


def child(workload: str, mode: str, n: int) -> None:
    """Run one workload once (what valgrind counts)."""
    ratio = RATIOS[mode]
    handle = (
        None
        if ratio is None
        else configure_telemetry(
            TelemetryConfig(exporter="memory", set_global=False, sample_ratio=ratio)
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_workload(workload, Path(tmp) / "bench.db", n, 100)
    if handle is not None:
        handle.shutdown()


def count(workload: str, mode: str, n: int) -> int:
    """Instructions of one child run under callgrind."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        workload,
        mode,
        str(n),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{result.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workloads", default="pipeline e2e,worker e2e")
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=3000)
    parser.add_argument("--child", nargs=3, metavar=("WORKLOAD", "MODE", "N"))
    args = parser.parse_args()
    if args.child:
        workload, mode, n = args.child
        child(workload, mode, int(n))
        return
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (Debian: apt-get install valgrind)")
    workloads = [w.strip() for w in args.workloads.split(",")]
    if unknown := set(workloads) - set(WORKLOADS):
        parser.error(f"unknown workloads: {sorted(unknown)}")
    print(
        f"# Python {platform.python_version()}, callgrind, instructions per item from runs "
        f"of {args.small:,} and {args.large:,} items"
    )
    for workload in workloads:
        base = 0.0
        for mode in RATIOS:
            started = time.perf_counter()
            small = count(workload, mode, args.small)
            large = count(workload, mode, args.large)
            per_item = (large - small) / (args.large - args.small)
            base = base or per_item
            print(
                f"{workload:<12} {mode:<12} {per_item / 1000:8,.0f} k instructions per item"
                f"   {100 * (per_item / base - 1):+6.1f} % vs off"
                f"   ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
