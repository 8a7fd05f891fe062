"""The operator commands in-process: output shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.cli import app
from tests.conftest import FakeClock
from tests.runtime.ops.conftest import corrupt, seed


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def db(tmp_path: Path, fake_clock: FakeClock) -> Path:
    path = tmp_path / "q.db"
    seed(path, fake_clock)
    return path


def test_doctor_json_table_and_exit_codes(db: Path, tmp_path: Path) -> None:
    code, out, _ = run(
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
    doc = json.loads(out)
    assert code == 1 and doc["status"] == "warning"  # old rows, expired lease
    assert {f["check"] for f in doc["findings"]} >= {"integrity", "retention", "expired_leases"}
    code, out, _ = run(
        "doctor",
        "--db",
        str(db),
        "--full",
        "--no-checkpoint",
        "--succeeded-older-than",
        "never",
        "--stuck-after",
        "30d",
    )
    assert code == 1 and "integrity_check: ok" in out and "garrison maintenance" in out
    assert run("maintenance", "--db", str(db))[0] == 0
    code, out, _ = run(
        "doctor",
        "--db",
        str(db),
        "--succeeded-older-than",
        "never",
        "--archived-older-than",
        "never",
        "--audit-older-than",
        "never",
        "--stuck-after",
        "1000w",
        "--format",
        "json",
    )
    assert code == 0, out
    code, _, err = run("doctor", "--db", str(db), "--stuck-after", "soon")
    assert code == 2 and err.startswith("garrison: error: 'soon' is not a duration")
    code, _, err = run("doctor", "--db", str(tmp_path / "none.db"))
    assert code == 1 and "no database at" in err and "Traceback" not in err
    code, _, err = run("doctor", "--db", str(db), "--format", "xml")
    assert code == 2 and "--format" in err


def test_doctor_on_a_corrupt_database_is_critical_with_no_traceback(db: Path) -> None:
    corrupt(db)
    code, out, err = run("doctor", "--db", str(db), "--format", "json")
    assert code == 1 and json.loads(out)["status"] == "critical" and err == ""
    dest = str(db.with_name("b"))
    for command in (("maintenance",), ("purge",), ("backup", "--dest", dest)):
        code, _, err = run(*command, "--db", str(db))
        assert code == 1 and err.startswith("garrison: error:") and err.count("\n") == 1, command
    code, _, err = run("db-stats", "--db", str(db))  # counts may still be readable
    assert "Traceback" not in err


def test_db_stats(db: Path) -> None:
    code, out, _ = run("db-stats", "--db", str(db), "--format", "json")
    stats = json.loads(out)
    assert code == 0 and stats["rows"]["items"] == 12 and stats["journal_mode"] == "wal"
    assert stats["items"]["default"]["succeeded"] == 5
    assert stats["dead_letters"]["default"] == {"live": 2, "archived": 1}
    code, out, _ = run("db-stats", "--db", str(db))
    assert code == 0 and "freelist_count" in out and "dead letters default live" in out


def test_maintenance(db: Path) -> None:
    code, out, _ = run("maintenance", "--db", str(db), "--vacuum", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["vacuumed"] and doc["reclaimed_leases"] == {"default": 1}
    code, out, _ = run("maintenance", "--db", str(db))
    assert code == 0 and out.startswith("maintenance done: 0 expired lease(s) reclaimed")


def test_purge(db: Path) -> None:
    code, out, _ = run("purge", "--db", str(db), "--dry-run")
    assert (code, out.strip()) == (
        0,
        "would purge 33 row(s) from queue default: 5 succeeded item(s), 1 dead letter(s), "
        "27 audit row(s)",
    )
    code, out, _ = run(
        "purge",
        "--db",
        str(db),
        "--archived-older-than",
        "1d",
        "--dead-letters-older-than",
        "1d",
        "--format",
        "json",
    )
    doc = json.loads(out)
    assert code == 0 and (doc["succeeded"], doc["dead_letters"], doc["total"]) == (5, 3, 35)
    assert doc["policy"]["dead_letters_s"] == 86400.0 and not doc["dry_run"]
    code, _, err = run("purge", "--db", str(db), "--audit-older-than", "yesterday")
    assert code == 2 and "not a duration" in err


def test_backup_backups_restore(db: Path, tmp_path: Path) -> None:
    dest = tmp_path / "b"
    code, out, err = run("backup", "--db", str(db), "--dest", str(dest))
    assert code == 0 and out.startswith("backup ") and "sha256" in out and err == ""
    code, out, _ = run(
        "backup",
        "--db",
        str(db),
        "--dest",
        str(dest),
        "--format",
        "json",
        "--backup-retention-days",
        "0",
    )
    made = json.loads(out)
    assert len(made["pruned"]) == 1  # the first one: older than 0 days
    code, out, _ = run("backup", "--db", str(db), "--dest", str(dest), "--no-prune")
    assert code == 0 and "removed" not in out
    code, out, _ = run("backups", "--dest", str(dest), "--format", "json")
    listed = json.loads(out)
    assert code == 0 and [b["status"] for b in listed] == ["ok", "ok"]
    assert listed[0]["created"] and "manifest" not in listed[0]
    code, out, _ = run("backups", "--dest", str(dest))
    assert code == 0 and "2 backup(s)" in out
    corrupt(db)
    code, out, _ = run("restore", made["backup"], "--db", str(db))
    assert code == 0 and "kept as" in out and "rows: items 12" in out
    code, out, _ = run("restore", made["backup"], "--db", str(db), "--format", "json")
    assert code == 0 and json.loads(out)["rows"]["items"] == 12
    with Path(made["backup"]).open("r+b") as fh:
        fh.seek(5000)
        fh.write(b"tampered")
    before = db.read_bytes()
    code, _, err = run("restore", made["backup"], "--db", str(db))
    assert code == 1 and "does not match the manifest" in err and db.read_bytes() == before
    code, _, _ = run("backups", "--dest", str(dest))
    assert code == 1
    code, _, err = run("backups", "--dest", str(tmp_path / "nowhere"))
    assert code == 2 and "no backup folder" in err
    code, _, err = run("restore", str(tmp_path / "nope.db"), "--db", str(db))
    assert code == 2 and "no backup at" in err


def test_restore_refused_while_the_database_is_open(db: Path, tmp_path: Path) -> None:
    code, out, _ = run("backup", "--db", str(db), "--dest", str(tmp_path / "b"), "--format", "json")
    holder = sqlite3.connect(db)
    holder.execute("SELECT count(*) FROM items").fetchone()  # WAL: a shared lock while open
    try:
        code, _, err = run("restore", json.loads(out)["backup"], "--db", str(db))
    finally:
        holder.close()
    assert code == 1 and "is in use" in err and "stop the workers first" in err


def test_diagnostics(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out_zip = tmp_path / "d.zip"
    code, out, _ = run("diagnostics", "--db", str(db), "--out", str(out_zip), "--format", "json")
    doc = json.loads(out)
    assert code == 0 and out_zip.exists() and doc["doctor_status"] == "warning"
    log = tmp_path / "w.log"
    code, out, _ = run(
        "diagnostics", "--db", str(db), "--out", str(out_zip), "--log-file", str(log)
    )
    assert code == 0 and "1 part(s) could not be gathered" in out and "w.log" in out
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("diagnostics", "--db", str(db))
    assert code == 0 and out.startswith("wrote garrison-diagnostics-")
    code, _, err = run("diagnostics", "--db", str(db), "--out", str(tmp_path))
    assert code == 2 and "is a folder" in err
    assert os.path.exists(tmp_path)
