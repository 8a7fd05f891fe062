"""Every ```sh block of every runbook, run in order against the situation it is for."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from runtime.store import DeadReason, Failure, NewItem, StoreConfig, open_store

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(runbook: Path) -> list[str]:
    """The shell blocks of a runbook, in order."""
    return BLOCK.findall(runbook.read_text())


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


def seed_crashed_worker(db: Path) -> dict[str, str]:
    """Items leased by a worker that died an hour ago; others still waiting."""

    async def go() -> None:
        past = time.time() - 3600
        async with open_store(db, StoreConfig(), clock=lambda: past) as store:
            await store.enqueue_many([NewItem(topic="t", payload=b"{}") for _ in range(10)])
            await store.lease("dead-worker:1234", 6, lease_s=30)

    trio.run(go)
    return {"HANDLER": "tests.runbooks.handlers:ok"}


SITUATIONS: dict[str, Callable[[Path], dict[str, str]]] = {
    "dead-letter-triage.md": seed_dead_letters,
    "crash-recovery.md": seed_crashed_worker,
}


def test_every_runbook_has_a_situation() -> None:
    found = {p.name for p in RUNBOOKS.glob("*.md") if p.name != "README.md"}
    assert found == set(SITUATIONS)


@pytest.mark.parametrize("name", sorted(SITUATIONS))
def test_runbook_commands_run_and_verify(name: str, tmp_path: Path) -> None:
    runbook = RUNBOOKS / name
    commands = blocks(runbook)
    assert commands, f"{name} has no ```sh blocks"
    db = tmp_path / "garrison.db"
    env = {
        **os.environ,
        **SITUATIONS[name](db),
        "DB": str(db),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }
    script = "set -euo pipefail\n" + "\n".join(commands)
    done = subprocess.run(
        ["bash", "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
