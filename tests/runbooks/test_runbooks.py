"""Every ```sh block of every runbook, run in order against the situation it is for.

Conventions (see runbooks/README.md): only ```sh blocks run, in one ``bash -euo pipefail``
session; ``$DB``, ``$BACKUPS`` and ``$HANDLER`` are set by the test; ``garrison`` and
``python3`` on ``PATH`` are this virtualenv's; ``<!-- runbook-test: FAULT -->`` injects a
fault (tests/runbooks/inject.py) at that point. Verification steps exit non-zero on failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import trio

from runtime.store import DeadReason, Failure, NewItem, StoreConfig, open_store
from tests.runbooks.inject import FAULTS

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"
STEP = re.compile(
    r"^```sh\n(?P<block>.*?)^```|^<!-- runbook-test: (?P<fault>[\w-]+) -->", re.M | re.S
)
DAY = 86400.0
OK_HANDLER = {"HANDLER": "tests.runbooks.handlers:ok"}


def blocks(runbook: Path) -> list[str]:
    """The shell blocks of a runbook, in order."""
    return [m["block"] for m in STEP.finditer(runbook.read_text()) if m["block"] is not None]


def script(runbook: Path) -> str:
    """The runbook as one bash script: its blocks, and its fault injections, in order."""
    lines = ["set -euo pipefail"]
    for match in STEP.finditer(runbook.read_text()):
        if match["fault"] is not None:
            assert match["fault"] in FAULTS, f"{runbook.name}: unknown fault {match['fault']}"
            lines.append(f'python3 -m tests.runbooks.inject {match["fault"]} "$DB"')
        else:
            lines.append(match["block"])
    return "\n".join(lines)


def seed_dead_letters(db: Path) -> dict[str, str]:
    """Dead letters as after an outage (``retries_exhausted``) plus bad payloads
    (``terminal_error``)."""

    async def go() -> None:
        async with open_store(db, StoreConfig()) as store:
            await store.enqueue_many(
                [NewItem(topic="mail.send", payload=b"{}", key=str(n)) for n in range(6)]
            )
            for n, item in enumerate(await store.lease("seed", 6)):
                bad = n >= 4
                await store.fail(
                    item.id, item.lease_token or "", Failure(error="smtp down", terminal=bad)
                )
                if not bad:  # out of attempts the quick way
                    await store.dead_letter(item.id, DeadReason.RETRIES_EXHAUSTED, "smtp down")

    trio.run(go)
    return {}


def seed_outage(db: Path) -> dict[str, str]:
    """A payments outage: charges out of retries (and one bad one), plus mail dead letters
    that are not part of it."""

    async def go() -> None:
        async with open_store(db) as store:
            charges = await store.enqueue_many(
                [NewItem(topic="payments.charge", payload=b"{}", key=f"c{n}") for n in range(6)]
            )
            mails = await store.enqueue_many(
                [NewItem(topic="mail.send", payload=b"{}", key=f"m{n}") for n in range(2)]
            )
            for n, result in enumerate(charges + mails):
                reason = DeadReason.TERMINAL_ERROR if n == 5 else DeadReason.RETRIES_EXHAUSTED
                await store.dead_letter(result.id, reason, "payments API down")

    trio.run(go)
    return OK_HANDLER


def seed_crashed_worker(db: Path) -> dict[str, str]:
    """Items leased by a worker that died an hour ago; others still waiting."""

    async def go() -> None:
        past = time.time() - 3600
        async with open_store(db, StoreConfig(), clock=lambda: past) as store:
            await store.enqueue_many([NewItem(topic="t", payload=b"{}") for _ in range(10)])
            await store.lease("dead-worker:1234", 6, lease_s=30)

    trio.run(go)
    return OK_HANDLER


def seed_backlog(db: Path) -> dict[str, str]:
    """A backed-up queue: 400 items waiting for half an hour, 20 of them shed."""

    async def go() -> None:
        past = time.time() - 1800
        async with open_store(db, clock=lambda: past) as store:
            await store.enqueue_many(
                [NewItem(topic="report.build", payload=b"{}", priority=n % 3) for n in range(420)]
            )
            await store.shed(20)

    trio.run(go)
    return OK_HANDLER


def seed_healthy(db: Path) -> dict[str, str]:
    """A queue in use: some items done, some waiting."""

    async def go() -> None:
        async with open_store(db) as store:
            await store.enqueue_many([NewItem(topic="t", payload=b"{}") for _ in range(20)])
            leased = await store.lease("w", 10)
            await store.ack_many([(i.id, i.lease_token or "") for i in leased])

    trio.run(go)
    return {}


def seed_old_rows(db: Path) -> dict[str, str]:
    """A month of history nobody purged, and some current work."""

    async def go() -> None:
        past = time.time() - 40 * DAY
        async with open_store(db, clock=lambda: past) as store:
            done = await store.enqueue_many(
                [NewItem(topic="t", payload=b"x" * 2000) for _ in range(200)]
            )
            leased = await store.lease("w", 200)
            await store.ack_many([(i.id, i.lease_token or "") for i in leased])
            dead = await store.enqueue_many([NewItem(topic="t", payload=b"{}") for _ in range(5)])
            for result in dead:
                await store.dead_letter(result.id, DeadReason.TERMINAL_ERROR, "bad")
                await store.archive(result.id)
            assert done
        async with open_store(db) as store:
            await store.enqueue_many([NewItem(topic="t", payload=b"{}") for _ in range(10)])

    trio.run(go)
    return {}


SITUATIONS: dict[str, Callable[[Path], dict[str, str]]] = {
    "dead-letter-triage.md": seed_dead_letters,
    "replay.md": seed_outage,
    "crash-recovery.md": seed_crashed_worker,
    "pressure-incident.md": seed_backlog,
    "backup-restore.md": seed_healthy,
    "retention-disk-full.md": seed_old_rows,
}


def test_every_runbook_has_a_situation() -> None:
    found = {p.name for p in RUNBOOKS.glob("*.md") if p.name != "README.md"}
    assert found == set(SITUATIONS)


def test_every_runbook_has_the_sections_an_operator_needs() -> None:
    for name in SITUATIONS:
        text = (RUNBOOKS / name).read_text()
        for section in ("## Preconditions", "## Steps", "## Verify", "## Roll back"):
            assert section in text, f"{name} lacks {section}"
        assert blocks(RUNBOOKS / name), f"{name} has no ```sh blocks"


def test_script_injects_faults_in_order() -> None:
    text = script(RUNBOOKS / "backup-restore.md")
    inject = text.index("tests.runbooks.inject corrupt-db")
    assert (
        text.index("garrison backup") < inject < text.index('garrison restore "$LATEST" --db "$DB"')
    )


def run_runbook(name: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """Seed the runbook's situation in ``folder`` and run its script there."""
    db = folder / "garrison.db"
    env = {
        **os.environ,
        **SITUATIONS[name](db),
        "DB": str(db),
        "BACKUPS": str(folder / "backups"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
        # Free disk on a CI runner is not the runbooks' business.
        "GARRISON_DISK_WARN_MB": "0",
        "GARRISON_DISK_CRITICAL_MB": "0",
    }
    return subprocess.run(
        ["bash", "-c", script(RUNBOOKS / name)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def results(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every runbook's run, three at a time (each is mostly process start-ups)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            name: pool.submit(run_runbook, name, tmp_path_factory.mktemp(name.removesuffix(".md")))
            for name in sorted(SITUATIONS)
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", sorted(SITUATIONS))
def test_runbook_commands_run_and_verify(
    name: str, results: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    done = results[name]
    assert done.returncode == 0, (
        f"{name} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    assert "Traceback" not in done.stderr
