"""A corrupted database: the doctor says critical, a restore from the last backup brings the
queue back, and no command shows a traceback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import trio
from typer.testing import CliRunner

from runtime.cli import app
from runtime.store import ItemState, NewItem, open_store


def garrison(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def make_queue(db: Path) -> list[str]:
    async def go() -> list[str]:
        async with open_store(db) as store:
            results = await store.enqueue_many(
                [NewItem(topic=f"t{n % 3}", payload=bytes([n % 256]) * 1500) for n in range(120)]
            )
            leased = await store.lease("w", 40)
            await store.ack_many([(i.id, i.lease_token or "") for i in leased])
            return [r.id for r in results]

    return trio.run(go)


@pytest.mark.parametrize("where", ["header", "middle"])
def test_corrupt_database_is_critical_and_restore_brings_the_queue_back(
    tmp_path: Path, where: str
) -> None:
    db, backups = tmp_path / "q.db", tmp_path / "backups"
    ids = make_queue(db)
    code, out, _ = garrison("backup", "--db", str(db), "--dest", str(backups), "--format", "json")
    assert code == 0
    backup_file = json.loads(out)["backup"]
    with db.open("r+b") as fh:
        fh.seek(0 if where == "header" else db.stat().st_size // 3)
        fh.write(b"\xa5" * 20000)

    code, out, err = garrison(
        "doctor", "--db", str(db), "--backups", str(backups), "--format", "json"
    )
    report = json.loads(out)
    assert code == 1 and report["status"] == "critical" and err == ""
    critical = [f for f in report["findings"] if f["severity"] == "critical"]
    assert critical and f"garrison restore {backup_file}" in critical[0]["fix"]

    for command in (
        ("queue-metrics",),
        ("dlq", "list"),
        ("enqueue", "--topic", "t", "--payload", "{}"),
        ("maintenance",),
        ("purge",),
        ("backup", "--dest", str(backups)),
    ):
        code, out, err = garrison(*command, "--db", str(db))
        assert code in (0, 1), command
        assert "Traceback" not in out + err, command
        if code == 1:
            assert err.startswith("garrison: error:") and err.count("\n") == 1, (command, err)

    code, out, err = garrison("restore", backup_file, "--db", str(db))
    assert code == 0, err
    code, out, _ = garrison(
        "doctor",
        "--db",
        str(db),
        "--format",
        "json",
        "--disk-warn-mb",
        "0",
        "--disk-critical-mb",
        "0",
    )
    assert code == 0 and json.loads(out)["status"] == "ok"

    async def check() -> None:
        async with open_store(db) as store:
            items = await store.items(limit=1000)
            assert [i.id for i in items] == ids
            assert len(await store.items(ItemState.SUCCEEDED)) == 40

    trio.run(check)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
