from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from runtime import NotADatabase, StoreUnavailable, ValidationFailed
from runtime.ops import (
    BackupRefused,
    BackupStatus,
    backup,
    latest_verified,
    list_backups,
    manifest_path,
    prune_backups,
    verify_backup,
)
from runtime.store import SQLiteStore
from tests.conftest import FakeClock
from tests.runtime.ops.conftest import DAY, corrupt, rows


def test_backup_is_a_verified_copy_with_a_manifest(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]], tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    result = backup(
        db,
        tmp_path / "b",
        now=fake_clock(),
        progress=lambda d, t: seen.append((d, t)),
        step_pages=2,
    )
    path = Path(result.backup)
    assert path.name == "garrison-q-20231124T221420Z.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(manifest_path(path).stat().st_mode) == 0o600
    doc = json.loads(manifest_path(path).read_text())
    assert doc["file"] == path.name and doc["size"] == path.stat().st_size
    assert doc["rows"] == {**rows(db), "effects": 0, "checkpoints": 0}
    assert doc["items"]["default"]["succeeded"] == 5 and doc["schema_version"] == 1
    assert doc["source"] == os.fspath(db.absolute()) and doc["created"] == "2023-11-24T22:14:20Z"
    assert seen and seen[-1][0] == seen[-1][1] and len(seen) > 1
    assert not (tmp_path / "b" / f"{path.name}-wal").exists()  # self-contained, not WAL
    assert verify_backup(path).sha256 == result.manifest.sha256
    again = backup(db, tmp_path / "b", now=fake_clock())
    assert Path(again.backup).name == "garrison-q-20231124T221420Z-2.db"


def test_backup_refuses_bad_sources_and_leaves_nothing(tmp_path: Path, db: Path) -> None:
    dest = tmp_path / "b"
    with pytest.raises(StoreUnavailable, match="no database at"):
        backup(tmp_path / "missing.db", dest, now=0.0)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE other (x)")
    with pytest.raises(NotADatabase, match="not a Garrison database"):
        backup(db, dest, now=0.0)
    assert list(dest.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValidationFailed, match="is not a folder"):
        backup(db, tmp_path / "file", now=0.0)


def test_backup_of_a_corrupt_database_is_refused(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]], tmp_path: Path
) -> None:
    corrupt(db)
    with pytest.raises(NotADatabase, match="no backup was written"):
        backup(db, tmp_path / "b", now=fake_clock())
    assert list((tmp_path / "b").iterdir()) == []


def test_retention_removes_only_old_garrison_backups_of_this_database(
    db: Path, fake_clock: FakeClock, tmp_path: Path
) -> None:
    SQLiteStore.open(db, clock=fake_clock).close()
    dest = tmp_path / "b"
    old = Path(backup(db, dest, now=fake_clock() - 20 * DAY).backup)
    recent = Path(backup(db, dest, now=fake_clock() - 2 * DAY, retention_days=None).backup)
    # Look-alikes that are not Garrison backups of this database, or lack a manifest:
    other_db = dest / "garrison-other-20200101T000000Z.db"
    other_db.write_bytes(b"x")
    manifest_path(other_db).write_text(
        json.dumps({**json.loads(manifest_path(old).read_text()), "file": other_db.name})
    )
    orphan = dest / "garrison-q-20200101T000000Z.db"
    orphan.write_bytes(b"x")
    foreign = dest / "notes.txt"
    foreign.write_text("keep me")
    bad_manifest = dest / "garrison-q-20200102T000000Z.db"
    bad_manifest.write_bytes(b"x")
    manifest_path(bad_manifest).write_text("{not json")
    result = backup(db, dest, now=fake_clock(), retention_days=14)
    assert result.pruned == (os.fspath(old),)
    assert not old.exists() and not manifest_path(old).exists()
    for kept in (recent, other_db, orphan, foreign, bad_manifest, Path(result.backup)):
        assert kept.exists()
    assert prune_backups(
        dest, db, now=fake_clock() + 100 * DAY, retention_days=1, keep=Path(result.backup)
    ) == [recent]


def test_listing_says_which_backups_verify(db: Path, fake_clock: FakeClock, tmp_path: Path) -> None:
    SQLiteStore.open(db, clock=fake_clock).close()
    dest = tmp_path / "b"
    made = [Path(backup(db, dest, now=fake_clock() + n).backup) for n in range(5)]
    with made[1].open("r+b") as fh:  # tampered: same size, different bytes
        fh.seek(5000)
        fh.write(b"evil")
    with made[2].open("ab") as fh:
        fh.write(b"more")
    manifest_path(made[3]).unlink()
    manifest_path(made[4]).write_text('{"file": "other.db"}')
    (dest / "unrelated.db").write_bytes(b"x")
    statuses = [(b.name, b.status) for b in list_backups(dest)]
    assert statuses == [
        (made[3].name, BackupStatus.NO_MANIFEST),
        (made[4].name, BackupStatus.BAD_MANIFEST),
        (made[0].name, BackupStatus.OK),
        (made[1].name, BackupStatus.CHECKSUM_MISMATCH),
        (made[2].name, BackupStatus.SIZE_MISMATCH),
    ]
    assert latest_verified(dest, db) is not None
    assert latest_verified(dest, db).name == made[0].name  # type: ignore[union-attr]
    assert latest_verified(tmp_path / "none", db) is None
    for path in made[1:]:
        with pytest.raises(BackupRefused, match="refused"):
            verify_backup(path)
    with pytest.raises(ValidationFailed, match="no backup folder"):
        list_backups(tmp_path / "none")
    with pytest.raises(ValidationFailed, match="no backup at"):
        verify_backup(dest / "missing.db")


def test_verify_refuses_a_backup_that_is_not_garrisons_or_is_corrupt(
    db: Path, fake_clock: FakeClock, tmp_path: Path
) -> None:
    SQLiteStore.open(db, clock=fake_clock).close()
    dest = tmp_path / "b"
    path = Path(backup(db, dest, now=fake_clock()).backup)

    def rewrite_manifest() -> None:
        import hashlib

        doc = json.loads(manifest_path(path).read_text())
        doc["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        doc["size"] = path.stat().st_size
        manifest_path(path).write_text(json.dumps(doc))

    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE effects")
    rewrite_manifest()
    with pytest.raises(BackupRefused, match="not a Garrison database"):
        verify_backup(path)
    with path.open("r+b") as fh:
        fh.seek(4096 * 2)
        fh.write(b"\xa5" * 8192)
    rewrite_manifest()
    with pytest.raises(BackupRefused, match=r"integrity_check|not a readable database"):
        verify_backup(path)
    path.write_bytes(b"garbage" * 1000)
    rewrite_manifest()
    with pytest.raises(BackupRefused, match="not a readable database"):
        verify_backup(path)
