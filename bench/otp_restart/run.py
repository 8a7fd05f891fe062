"""Supervisor restart latency, Garrison next to Erlang/OTP, in one command.

Run from the repository root (Erlang/OTP's ``escript`` on PATH):

    .venv/bin/python bench/otp_restart/run.py [--restarts 10000] [--rounds 5]

What is measured, the same way on both sides (one crash at a time, on an idle supervisor):

* **start of the interval**: the crashing child reads a monotonic clock as the last thing
  before it raises (Python: ``time.perf_counter()`` then ``raise``; Erlang:
  ``erlang:monotonic_time(nanosecond)`` then ``erlang:error(boom)`` in a ``gen_server``);
* **end of the interval**: the replacement child reads the same clock as the last thing its
  initialisation does before it reports itself started (Python: just before
  ``task_status.started()``; Erlang: just before ``init/1`` returns ``{ok, State}``). With
  several children it is the *last* child in start order, so for ``one_for_all`` the
  interval ends when the whole group is running again.

Cases: ``one_for_one`` with 1 child; ``one_for_all`` with 3 children, the middle one
crashing (the other two are stopped in reverse order, then all three started in order).
Before each crash the bench waits for the replacement and lets the supervisor finish (Trio:
``wait_all_tasks_blocked()``; OTP: one ``sys:get_state/1`` call on the supervisor).

Sides:

* **OTP**: ``otp_restart.escript`` (OTP's own ``supervisor`` and ``gen_server``; logger
  level ``none``, so crash reports are dropped at the level check; a fresh supervisor every
  50 restarts, outside the measured intervals, because OTP's intensity check walks its list
  of recent restarts);
* **Garrison**: :func:`bench.supervisor_restart.restart_latency`, the one Garrison
  measurement, on Trio, twice: with the OpenTelemetry SDK recording (a span and a counter
  per restart, as ``bench/supervisor_restart.py`` reports it) and with the OTel API alone
  (no SDK configured: telemetry calls are no-ops; the log line goes to logging's
  ``NullHandler``). The second is the like-for-like row: OTP records nothing either.

Rounds are interleaved (OTP, then Garrison, then the other order next round) and each side
warms up with 500 restarts per case per round. The table gives, per percentile, the median
over the rounds; ratios are Garrison / OTP of those medians.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from supervisor_restart import latency_summary, restart_latency  # noqa: E402

from supervisors import Strategy  # noqa: E402

ESCRIPT = Path(__file__).resolve().parent / "otp_restart.escript"
CASES = [(Strategy.ONE_FOR_ONE, 1), (Strategy.ONE_FOR_ALL, 3)]
SIDES = ["otp", "garrison", "garrison+sdk"]
LABELS = {
    "otp": "OTP",
    "garrison": "Garrison (OTel API)",
    "garrison+sdk": "Garrison (OTel SDK)",
}
KEYS = ["p50_us", "p90_us", "p99_us", "max_us"]
WARMUP = 500

Row = dict[str, Any]


def run_otp(restarts: int) -> tuple[dict[tuple[str, int], Row], Row]:
    escript = shutil.which("escript")
    if escript is None:
        sys.exit("escript not found on PATH: install Erlang/OTP")
    out = subprocess.run(
        [escript, str(ESCRIPT), str(restarts), str(WARMUP)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {(r["strategy"], r["children"]): r for r in rows}, rows[0]


def run_garrison(restarts: int, telemetry: bool) -> dict[tuple[str, int], Row]:
    rows: dict[tuple[str, int], Row] = {}
    for strategy, children in CASES:
        trio.run(restart_latency, WARMUP, strategy, children, telemetry)
        gc.collect()
        latencies = trio.run(restart_latency, restarts, strategy, children, telemetry)
        rows[(strategy.value, children)] = latency_summary(latencies)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=10_000, help="per case, per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args()

    results: dict[str, dict[tuple[str, int], list[Row]]] = {s: {} for s in SIDES}
    otp_info: Row = {}

    def record(side: str, rows: dict[tuple[str, int], Row]) -> None:
        for case, row in rows.items():
            results[side].setdefault(case, []).append(row)

    load_before = os.getloadavg()[0]
    for round_ in range(args.rounds):
        order = ["otp", "garrison", "garrison+sdk"]
        if round_ % 2:
            order.reverse()
        for side in order:
            if side == "otp":
                rows, otp_info = run_otp(args.restarts)
                record(side, rows)
            else:
                record(side, run_garrison(args.restarts, telemetry=side == "garrison+sdk"))
        print(f"# round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    print(
        f"# {os.cpu_count()} cpu, {platform.python_implementation()} "
        f"{platform.python_version()}, trio {trio.__version__}; Erlang/OTP "
        f"{otp_info.get('otp_release')} (erts {otp_info.get('erts')}, "
        f"{otp_info.get('schedulers')} schedulers); load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(
        f"# {args.restarts} restarts per case per round, {args.rounds} interleaved rounds; "
        "median of the rounds' percentiles, in microseconds, crash -> replacement started"
    )
    header = f"{'case':<24} {'side':<22}" + "".join(f"{k[:-3]:>10}" for k in KEYS)
    print(header)
    for strategy, children in CASES:
        case = (strategy.value, children)
        name = f"{strategy.value}, {children} child{'ren' if children > 1 else ''}"
        medians = {
            side: {k: statistics.median(r[k] for r in results[side][case]) for k in KEYS}
            for side in SIDES
        }
        for side in SIDES:
            cells = "".join(f"{medians[side][k]:>10.1f}" for k in KEYS)
            print(f"{name:<24} {LABELS[side]:<22}{cells}")
            name = ""
        for side in SIDES[1:]:
            ratio = "".join(f"{medians[side][k] / medians['otp'][k]:>9.1f}x" for k in KEYS)
            print(f"{'':<24} {'ratio ' + side:<22}{ratio}")
    rounds = {
        side: {
            f"{s}/{c}": [round(r["p50_us"], 1) for r in results[side][(s, c)]]
            for s, c in ((st.value, ch) for st, ch in CASES)
        }
        for side in SIDES
    }
    print(f"# p50 per round: {json.dumps(rounds)}")


if __name__ == "__main__":
    main()
