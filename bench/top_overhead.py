"""What `garrison top --db` costs a worker draining the same database.

Usage: python bench/top_overhead.py [--items 20000] [--rounds 5] [--refresh 2 0.5]

Per round, interleaved (the machine's load drifts; the order of the modes rotates each
round), every run on a fresh SQLite file holding ``--items`` queued items:

- ``alone``: ``garrison work --handler benchhandlers:anoop --drain`` timed from a shell;
- ``top@R``: the same, while ``garrison top`` reads the database every R seconds. top runs
  headless in its own process (textual's headless mode: the same app, reads and redraws,
  without a terminal), started and past its first refresh before the worker starts.

The worker's items/s (wall time of the process, start-up included) is printed per run, and
the medians with top's cost in percent (the issue's target: <= 5 %), with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.store import NewItem, StoreConfig, open_store  # noqa: E402

HANDLERS = "async def anoop(item):\n    return None\n"


def garrison() -> str:
    exe = Path(sys.executable).with_name("garrison")
    return str(exe) if exe.exists() else "garrison"


def seed(db: Path, n: int) -> None:
    async def main() -> None:
        async with open_store(db, StoreConfig()) as store:
            payload = b'{"pad": "' + b"x" * 180 + b'"}'
            for start in range(0, n, 500):
                await store.enqueue_many(
                    [
                        NewItem(topic=f"bench{i % 4}", payload=payload)
                        for i in range(start, min(n, start + 500))
                    ]
                )

    trio.run(main)


def top_child(db: str, refresh: float) -> None:
    """Run top headless over ``db`` until killed; print ``ready`` after the first refresh."""
    from runtime.tui import TopApp, TopConfig

    class Headless(TopApp):
        async def refresh_now(self) -> None:
            first = self.refreshes == 0
            await super().refresh_now()
            if first:
                print("ready", flush=True)

    async def main() -> None:
        async with open_store(db, StoreConfig(), create=False) as store:
            await Headless(store, TopConfig(refresh_s=refresh), source=db).run_async(
                headless=True, size=(120, 40)
            )

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(tmp: Path, n: int, refresh: float | None, env: dict[str, str]) -> tuple[float, float]:
    """The worker's items/s over one drain, and top's CPU during it (share of one core)."""
    db = tmp / f"bench-{time.monotonic_ns()}.db"
    seed(db, n)
    top = None
    if refresh is not None:
        top = subprocess.Popen(
            [sys.executable, __file__, "--top-child", str(db), str(refresh)],
            env=env,
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert top.stdout is not None
        line = top.stdout.readline()
        if line.strip() != "ready":
            top.kill()
            raise SystemExit(
                f"top did not start: {line!r} {top.stderr.read() if top.stderr else ''}"
            )
    try:
        top_cpu = 0.0 if top is None else cpu_seconds(top.pid)
        t = time.perf_counter()
        done = subprocess.run(
            [
                garrison(),
                "work",
                "--db",
                str(db),
                "--handler",
                "benchhandlers:anoop",
                "--drain",
                # With its default of 0.2 s, `garrison work --drain` waits one poll interval
                # per batch of --concurrency items (~45 items/s on main at the time of
                # writing); 0.01 and 64 at once keep the worker busy (CPU-bound), which is
                # what this bench needs.
                "--poll-interval",
                "0.01",
                "--concurrency",
                "64",
            ],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - t
        top_cpu = 0.0 if top is None else (cpu_seconds(top.pid) - top_cpu) / elapsed
        if done.returncode != 0:
            raise SystemExit(f"work exited {done.returncode}: {done.stderr[-2000:]}")
    finally:
        if top is not None:
            top.terminate()
            try:
                top.wait(timeout=10)
            except subprocess.TimeoutExpired:
                top.kill()
                top.wait()
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return n / elapsed, top_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--refresh", type=float, nargs="+", default=[2.0, 0.5])
    parser.add_argument("--top-child", nargs=2, metavar=("DB", "REFRESH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.top_child:
        top_child(args.top_child[0], float(args.top_child[1]))
        return
    modes: list[float | None] = [None, *args.refresh]
    results: dict[float | None, list[float]] = {m: [] for m in modes}
    cpu: dict[float | None, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "benchhandlers.py").write_text(HANDLERS)
        env = dict(os.environ, PYTHONPATH=f"{tmp}{os.pathsep}{ROOT}")
        load_before = os.getloadavg()
        for r in range(args.rounds):
            order = modes[r % len(modes) :] + modes[: r % len(modes)]
            for mode in order:
                rate, top_cpu = one_run(tmp, args.items, mode, env)
                results[mode].append(rate)
                cpu[mode].append(top_cpu)
                name = "alone" if mode is None else f"top@{mode:g}s"
                print(
                    f"round {r + 1} {name:>10}: {rate:8.0f} items/s  top cpu {100 * top_cpu:4.1f} % of a core  load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        load_after = os.getloadavg()
    base = statistics.median(results[None])
    print(
        f"\n{args.items} items x {args.rounds} rounds; load average before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}; {os.cpu_count()} CPUs"
    )
    for mode in modes:
        med = statistics.median(results[mode])
        name = "alone" if mode is None else f"with top@{mode:g}s"
        cost = (
            ""
            if mode is None
            else f"  top costs {100 * (base - med) / base:+.1f} %"
            f"  (top used {100 * statistics.median(cpu[mode]):.1f} % of a core)"
        )
        spread = f"(min {min(results[mode]):.0f}, max {max(results[mode]):.0f})"
        print(f"  {name:>16}: median {med:8.0f} items/s {spread}{cost}")


if __name__ == "__main__":
    main()
