"""`garrison work` as a user runs it, next to the queue's own loops and huey, in one run.

Usage: python bench/work_cli.py [--items 20000] [--rounds 3] [--work-args "..."]

Per round, interleaved (this machine's load drifts), every run on a fresh SQLite file:

- ``queue drain``: the store's own inner loop over the queued items, in process (one
  consumer, ``lease`` 100 + ``ack_many``), i.e. the ceiling of a drain;
- ``queue e2e``: bench/queue_throughput.py's end-to-end loop (4 producers enqueueing while 4
  consumers lease and ack), the figure issue 11 compares against;
- ``garrison work`` with an async no-op and with a sync no-op handler: items queued with
  ``garrison enqueue --from-file`` first, then ``garrison work --handler ... --drain`` timed
  from a shell, process start-up and interpreter exit included (start-up alone is measured
  too: ``garrison work --drain`` over an empty queue), with bytecode cached as an installed
  package has it (a warm-up run fills a cache in the temporary directory);
- huey (``SqliteHuey``, in process, no consumer threads: ``enqueue`` then ``dequeue`` +
  ``execute`` until empty), if huey is installed (``pip install -e '.[bench]'``).

Medians of the rounds are printed, with the ratios the issue asks for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_throughput import queue_e2e
from queue_throughput import PAYLOAD, consume, enqueue_all

from runtime.store import StoreConfig, open_store

ROOT = Path(__file__).resolve().parents[1]

HANDLERS = textwrap.dedent(
    """
    async def anoop(item):
        return None

    def noop(item):
        return None

    def huey_noop():
        return None
    """
)


def garrison() -> str:
    exe = Path(sys.executable).with_name("garrison")
    return str(exe) if exe.exists() else "garrison"


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    """Run ``cmd`` to completion; return its wall time in seconds (it must exit 0)."""
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed


def queue_drain(db: Path, n: int) -> float:
    async def main() -> float:
        async with open_store(db, StoreConfig()) as store:
            await enqueue_all(store, n, 4, 100)
            t = time.perf_counter()
            await consume(store, n, 1, 100, False)
            return n / (time.perf_counter() - t)

    return trio.run(main)


def huey_e2e(tmp: Path, n: int) -> tuple[float, float] | None:
    """(end-to-end items/s, drain items/s) of SqliteHuey in process, or None without huey."""
    try:
        from huey import SqliteHuey
    except ImportError:
        return None
    huey = SqliteHuey(filename=str(tmp / f"huey-{time.monotonic_ns()}.db"), immediate=False)
    task = huey.task()(lambda payload: None)
    t = time.perf_counter()
    for _ in range(n):
        task(PAYLOAD.decode())
    enqueued = time.perf_counter()
    drained = 0
    while (message := huey.dequeue()) is not None:
        huey.execute(message)
        drained += 1
    end = time.perf_counter()
    assert drained == n, (drained, n)
    return n / (end - t), n / (end - enqueued)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--work-args", default="", help="extra options for garrison work (e.g. '--concurrency 8')"
    )
    args = parser.parse_args()
    n = args.items
    extra = shlex.split(args.work_args)
    results: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "benchhandlers.py").write_text(HANDLERS)
        items = tmp / "items.jsonl"
        with items.open("w") as f:
            for i in range(n):
                f.write(json.dumps({"topic": "bench", "payload": {"n": i, "pad": "x" * 180}}))
                f.write("\n")
        env = dict(os.environ, PYTHONPATH=f"{tmp}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        env.pop("GARRISON_DB", None)
        # As a user runs it: an installed package has its bytecode cached. Without this a
        # PYTHONDONTWRITEBYTECODE shell recompiles the tree on every command (~0.2 s each).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        exe = garrison()
        counter = iter(range(10**6))

        def fresh() -> Path:
            return tmp / f"run-{next(counter)}.db"

        def work(handler: str) -> float:
            db = fresh()
            note(
                "enqueue --from-file",
                n / run([exe, "enqueue", "--db", str(db), "--from-file", str(items)], env, tmp),
            )
            seconds = run(
                [exe, "work", "--db", str(db), "--handler", handler, "--drain", *extra], env, tmp
            )
            return n / seconds

        steps: list[tuple[str, Callable[[], float | None]]] = [
            ("queue drain (lease 100 + ack_many)", lambda: queue_drain(fresh(), n)),
            ("queue e2e (4 producers, 4 consumers)", lambda: trio.run(queue_e2e, fresh(), n)),
            ("garrison work, async no-op", lambda: work("benchhandlers:anoop")),
            ("garrison work, sync no-op", lambda: work("benchhandlers:noop")),
        ]
        # Warm-up (not timed): writes the bytecode cache.
        run(
            [exe, "work", "--db", str(fresh()), "--handler", "benchhandlers:anoop", "--drain"],
            env,
            tmp,
        )
        for r in range(args.rounds):
            for name, step in steps:
                note(name, step() or 0.0)
            startup = run(
                [exe, "work", "--db", str(fresh()), "--handler", "benchhandlers:anoop", "--drain"],
                env,
                tmp,
            )
            note("start-up (empty queue), seconds", startup)
            huey = huey_e2e(tmp, n)
            if huey is not None:
                note("huey e2e (SqliteHuey, in process)", huey[0])
                note("huey drain", huey[1])
            print(f"# round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    print(
        f"# {platform.node()} {os.cpu_count()} cpu, Python {platform.python_version()}, "
        f"{n} items, median of {args.rounds} interleaved rounds, work args {extra or 'defaults'}"
    )
    med = {k: statistics.median(v) for k, v in results.items()}
    for name, values in results.items():
        unit = "s" if "seconds" in name else "items/s"
        shown = ", ".join(f"{v:,.2f}" if unit == "s" else f"{v:,.0f}" for v in values)
        fmt = f"{med[name]:>10.2f} s      " if unit == "s" else f"{med[name]:>10,.0f} items/s"
        print(f"{name:<40} {fmt}   (rounds: {shown})")
    a, s = med["garrison work, async no-op"], med["garrison work, sync no-op"]
    print(f"work async / queue e2e {a / med['queue e2e (4 producers, 4 consumers)']:>8.0%}")
    print(f"work async / queue drain {a / med['queue drain (lease 100 + ack_many)']:>6.0%}")
    if "huey e2e (SqliteHuey, in process)" in med:
        h = med["huey e2e (SqliteHuey, in process)"]
        print(f"work async / huey e2e   {a / h:>7.1f}x")
        print(f"work sync / huey e2e    {s / h:>7.1f}x")


if __name__ == "__main__":
    main()
