from __future__ import annotations

import os
import sqlite3
from collections import namedtuple
from pathlib import Path

import pytest

from policies import RetentionPolicy
from runtime import StoreUnavailable
from runtime.ops import DoctorConfig, Severity, backup, diagnose, retention_flags
from runtime.store import SQLiteStore
from tests.conftest import FakeClock
from tests.runtime.ops.conftest import DAY, checkpoint, corrupt, rows

Usage = namedtuple("Usage", "total used free")
PLENTY = lambda _path: Usage(0, 0, 10**12)  # noqa: E731


def severities(report: object) -> dict[str, str]:
    return {f.check: f.severity.value for f in report.findings}  # type: ignore[attr-defined]


def test_a_healthy_database_is_ok(db: Path, fake_clock: FakeClock) -> None:
    SQLiteStore.open(db, clock=fake_clock).close()
    report = diagnose(db, now=fake_clock(), disk_usage=PLENTY)
    assert report.status is Severity.OK and report.exit_code == 0
    assert set(severities(report).values()) == {"ok"}
    assert report.finding("wal_checkpoint").data["frames_after"] == 0  # type: ignore[union-attr]
    assert report.finding("nothing") is None


def test_findings_on_a_neglected_database(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]]
) -> None:
    before = rows(db)
    config = DoctorConfig(
        stuck_after_s=30,
        dead_letter_growth=0,
        dead_letter_window_s=11 * DAY,
        retention=RetentionPolicy(succeeded_s=DAY, archived_s=DAY, dead_letters_s=DAY),
    )
    report = diagnose(db, config, now=fake_clock(), disk_usage=PLENTY)
    assert report.exit_code == 1 and report.status is Severity.WARNING
    found = {f.check: f for f in report.findings}
    assert found["expired_leases"].data["count"] == 1
    assert found["expired_leases"].data["owners"] == {"gone-host:1:abc": 1}
    assert "garrison maintenance --db" in (found["expired_leases"].fix or "")
    assert found["stuck_items"].data["count"] == 3
    assert "garrison work" in (found["stuck_items"].fix or "")
    retention = found["retention"]
    assert (retention.data["succeeded"], retention.data["archived"]) == (5, 1)
    assert retention.data["dead_letters"] == 2
    assert retention.fix is not None and retention.fix.startswith("garrison purge --db")
    assert "--succeeded-older-than 1d" in retention.fix
    assert "--dead-letters-older-than 1d" in retention.fix
    assert found["dead_letter_growth"].data["new"] == 3
    assert "garrison dlq list" in (found["dead_letter_growth"].fix or "")
    assert rows(db) == before  # the doctor changes nothing


def test_defaults_see_dead_letters_as_info(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]]
) -> None:
    report = diagnose(
        db, DoctorConfig(dead_letter_window_s=11 * DAY), now=fake_clock(), disk_usage=PLENTY
    )
    assert severities(report)["dead_letter_growth"] == "info"
    assert severities(report)["retention"] == "warning"  # succeeded items older than 7 d
    assert severities(report)["stuck_items"] == "ok"


def test_other_queues_are_checked_and_named_in_fixes(tmp_path: Path, fake_clock: FakeClock) -> None:
    from tests.runtime.ops.conftest import seed

    db = tmp_path / "multi.db"
    seed(db, fake_clock, queue="mail")
    report = diagnose(db, now=fake_clock(), disk_usage=PLENTY)
    leases = report.finding("expired_leases")
    assert leases is not None and leases.data["queue"] == "mail"
    stuck = diagnose(db, DoctorConfig(stuck_after_s=1), now=fake_clock(), disk_usage=PLENTY)
    assert "--queue mail" in (stuck.finding("stuck_items").fix or "")  # type: ignore[union-attr]


def test_corrupt_pages_are_critical_and_name_the_latest_backup(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]], tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    made = backup(db, folder, now=fake_clock())
    corrupt(db)
    report = diagnose(db, DoctorConfig(backups=str(folder)), now=fake_clock(), disk_usage=PLENTY)
    assert report.status is Severity.CRITICAL and report.exit_code == 1
    integrity = report.finding("integrity")
    assert integrity is not None and integrity.severity is Severity.CRITICAL
    assert integrity.fix is not None and f"garrison restore {made.backup}" in integrity.fix


def test_full_integrity_check_reports_problems(db: Path, fake_clock: FakeClock) -> None:
    SQLiteStore.open(db, clock=fake_clock).close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO audit (at, kind, queue) VALUES (1, 'k', 'default')")
    conn.execute("CREATE TABLE spare (kind, at)")
    conn.execute("CREATE INDEX spare_kind ON spare (kind, at)")
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'spare_kind'").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    # audit_kind now points at an empty index: the audit row is missing from it.
    conn.execute("UPDATE sqlite_master SET rootpage = ? WHERE name = 'audit_kind'", root)
    conn.commit()
    conn.close()
    report = diagnose(
        db, DoctorConfig(full=True, checkpoint=False), now=fake_clock(), disk_usage=PLENTY
    )
    integrity = report.finding("integrity")
    assert integrity is not None and integrity.severity is Severity.CRITICAL
    assert integrity.message.startswith("integrity_check found corruption")
    assert "BACKUP" in (integrity.fix or "") and "garrison backups --dest" in (integrity.fix or "")


def test_a_bad_header_is_critical(db: Path, fake_clock: FakeClock) -> None:
    db.write_bytes(b"this is not sqlite at all" * 100)
    report = diagnose(db, now=fake_clock(), disk_usage=PLENTY)
    assert severities(report) == {"disk": "ok", "database": "critical"}


def test_a_missing_database_is_an_error_not_a_finding(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="no database at"):
        diagnose(tmp_path / "nope.db", now=0.0)


def test_schema_findings(db: Path, fake_clock: FakeClock) -> None:
    db.touch()
    assert severities(diagnose(db, now=0.0, disk_usage=PLENTY))["schema"] == "info"
    SQLiteStore.open(db, clock=fake_clock).close()
    with sqlite3.connect(db) as conn:
        conn.execute("DROP INDEX items_ready")
        conn.execute("PRAGMA user_version = 0")
    schema = diagnose(db, now=0.0, disk_usage=PLENTY).finding("schema")
    assert schema is not None and schema.severity is Severity.WARNING
    assert schema.data["missing_indexes"] == ["items_ready"] and "older" in schema.message
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    newer = diagnose(db, now=0.0, disk_usage=PLENTY).finding("schema")
    assert (
        newer is not None and newer.severity is Severity.CRITICAL and "upgrade" in (newer.fix or "")
    )
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 1")
        conn.execute("DROP TABLE effects")
    other = diagnose(db, now=0.0, disk_usage=PLENTY).finding("schema")
    assert other is not None and "not a Garrison database" in other.message


def test_dangling_foreign_keys_are_a_warning(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]]
) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM items WHERE id = ?", (seeded["dead"][1],))  # FKs off here
    found = diagnose(db, now=fake_clock(), disk_usage=PLENTY).finding("foreign_keys")
    assert found is not None and found.severity is Severity.WARNING
    assert found.data["rows"] == {"dead_letters": 1}


def test_size_cap_and_disk_space(db: Path, fake_clock: FakeClock) -> None:
    SQLiteStore.open(db, clock=fake_clock).close()
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    for cap, expected in ((pages, "critical"), (int(pages / 0.85), "warning"), (pages * 10, "ok")):
        report = diagnose(db, DoctorConfig(max_page_count=cap), now=0.0, disk_usage=PLENTY)
        assert severities(report)["size_cap"] == expected
    config = DoctorConfig(disk_warn_bytes=100, disk_critical_bytes=10)
    for free, expected in ((5, "critical"), (50, "warning"), (500, "ok")):
        report = diagnose(db, config, now=0.0, disk_usage=lambda _p, f=free: Usage(0, 0, f))
        assert severities(report)["disk"] == expected

    def broken(_path: str) -> Usage:
        raise OSError(5, "I/O error")

    assert severities(diagnose(db, now=0.0, disk_usage=broken))["disk"] == "warning"


def test_wal_frames_before_and_after_and_a_large_wal(db: Path, fake_clock: FakeClock) -> None:
    store = SQLiteStore.open(db, clock=fake_clock)
    try:
        reader = sqlite3.connect(db)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM items").fetchone()  # an old snapshot pins the WAL
        import trio

        from runtime.store import NewItem

        trio.run(store.enqueue, NewItem(topic="t", payload=b"x"))
        report = diagnose(db, DoctorConfig(wal_warn_bytes=1), now=0.0, disk_usage=PLENTY)
        wal = report.finding("wal_checkpoint")
        assert wal is not None and wal.severity is Severity.WARNING
        assert wal.data["frames_before"] > 0 and wal.data["frames_after"] > 0
        reader.rollback()
        reader.close()
        wal = diagnose(db, now=0.0, disk_usage=PLENTY).finding("wal_checkpoint")
        assert wal is not None and wal.data["frames_after"] == 0
    finally:
        store.close()


def test_not_in_wal_mode_is_info(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE x (a)")
    checkpoint(db)
    wal = diagnose(db, now=0.0, disk_usage=PLENTY).finding("wal_checkpoint")
    assert wal is not None and wal.severity is Severity.INFO


def test_a_locked_database_and_a_full_one(db: Path, fake_clock: FakeClock) -> None:
    SQLiteStore.open(db, clock=fake_clock).close()
    doctor = __import__("runtime.ops._doctor", fromlist=["_Doctor"])
    out: list[object] = []
    d = doctor._Doctor(db, DoctorConfig(), 0.0, out)
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorname = "SQLITE_BUSY"  # type: ignore[attr-defined]
    full = sqlite3.OperationalError("database or disk is full")

    def raise_(exc: Exception) -> None:
        raise exc

    assert d._guard("x", lambda: raise_(busy)) is False
    assert d._guard("y", lambda: raise_(full)) is False
    readonly = sqlite3.OperationalError("attempt to write a readonly database")
    assert d._guard("z", lambda: raise_(readonly)) is False
    assert [(f.check, f.severity.value) for f in out] == [  # type: ignore[attr-defined]
        ("x", "warning"),
        ("y", "critical"),
        ("z", "warning"),
    ]  # type: ignore[attr-defined]


def test_retention_flags_name_only_what_differs() -> None:
    assert retention_flags(RetentionPolicy()) == ""
    flags = retention_flags(RetentionPolicy(succeeded_s=3600, audit_s=None, archived_s=90))
    assert flags == " --succeeded-older-than 1h --archived-older-than 90 --audit-older-than never"


def test_report_is_stable_json(db: Path, fake_clock: FakeClock) -> None:
    import msgspec

    SQLiteStore.open(db, clock=fake_clock).close()
    doc = msgspec.to_builtins(diagnose(db, now=1.0, disk_usage=PLENTY))
    assert set(doc) == {"path", "at", "status", "findings"} and doc["path"] == os.fspath(db)
    assert set(doc["findings"][0]) == {"check", "severity", "message", "fix", "data"}
