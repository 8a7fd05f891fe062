"""``backup`` and ``backups``: consistent online copies with a SHA-256 manifest, and their
retention.

A backup is ``garrison-<db stem>-YYYYMMDDTHHMMSSZ.db`` (``-2``, ``-3``... when two are taken
in the same second), a self-contained SQLite file (rollback journal, not WAL), next to a
manifest ``<same name>.sha256.json``. Both are mode 0600. Retention deletes only files that
match that pattern for the same database *and* have a readable manifest naming them.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from importlib import metadata
from pathlib import Path

import msgspec

from runtime._errors import NotADatabase, ValidationFailed
from runtime._files import (
    atomic_private_file,
    create_private,
    ensure_private_dir,
    fsync_path,
    private_temp_dir,
)
from runtime.ops._connect import items_by_state, open_db, row_counts, sqlite_errors
from runtime.ops._errors import BackupRefused
from runtime.store.sqlite import EXPECTED_TABLES, SCHEMA_VERSION, check_path

MANIFEST_SUFFIX = ".sha256.json"
MANIFEST_FORMAT = "garrison-backup/1"
BACKUP_NAME = re.compile(r"^garrison-(?P<stem>.+)-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?\.db$")
DEFAULT_RETENTION_DAYS = 14.0
STEP_PAGES = 256
_CHUNK = 1024 * 1024

Progress = Callable[[int, int], None]
"""Called with (done, total) pages as a backup advances."""


class BackupManifest(msgspec.Struct, frozen=True):
    """What a backup is: its checksum, size, origin, and what it holds.

    Attributes:
        format: ``garrison-backup/1``.
        file: the backup's file name (the manifest sits next to it).
        sha256: hex SHA-256 of the file.
        size: bytes.
        created_at: epoch seconds when the copy's snapshot was taken.
        created: the same as ISO-8601 UTC.
        source: absolute path of the database copied.
        schema_version: Garrison's schema version in the copy.
        rows: rows per table in the copy.
        items: items per queue and state in the copy.
        garrison_version: the Garrison that wrote it.
        sqlite_version: the SQLite library that wrote it.
    """

    format: str
    file: str
    sha256: str
    size: int
    created_at: float
    created: str
    source: str
    schema_version: int
    rows: dict[str, int]
    items: dict[str, dict[str, int]]
    garrison_version: str
    sqlite_version: str


class BackupStatus(enum.StrEnum):
    """Whether a backup file matches its manifest."""

    OK = "ok"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    SIZE_MISMATCH = "size_mismatch"
    NO_MANIFEST = "no_manifest"
    BAD_MANIFEST = "bad_manifest"

    @property
    def explanation(self) -> str:
        """One line saying what is wrong."""
        return _EXPLAIN[self]


_EXPLAIN = {
    BackupStatus.OK: "checksum verified",
    BackupStatus.CHECKSUM_MISMATCH: "its SHA-256 does not match the manifest (corrupt or tampered)",
    BackupStatus.SIZE_MISMATCH: "its size does not match the manifest (truncated or tampered)",
    BackupStatus.NO_MANIFEST: f"it has no {MANIFEST_SUFFIX} manifest next to it",
    BackupStatus.BAD_MANIFEST: "its manifest is unreadable or names another file",
}


class BackupInfo(msgspec.Struct, frozen=True):
    """One backup in a folder, and whether it verifies."""

    path: str
    name: str
    database: str
    created_at: float | None
    size: int
    sha256: str | None
    status: BackupStatus
    manifest: BackupManifest | None = None


class BackupResult(msgspec.Struct, frozen=True):
    """A backup just written, and the old ones retention removed."""

    backup: str
    manifest: BackupManifest
    manifest_path: str
    pruned: tuple[str, ...]


def manifest_path(backup: Path) -> Path:
    """The manifest next to a backup file."""
    return backup.with_name(backup.name + MANIFEST_SUFFIX)


def stamp(at: float) -> str:
    """``YYYYMMDDTHHMMSSZ`` for an epoch time."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(at))


def iso(at: float) -> str:
    """ISO-8601 UTC for an epoch time, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def garrison_version() -> str:
    """The installed Garrison's version."""
    try:
        return metadata.version("garrison")
    except metadata.PackageNotFoundError:  # pragma: no cover - always installed
        return "unknown"


def _dest_folder(dest: Path, *, create: bool) -> Path:
    if dest.exists() and not dest.is_dir():
        raise ValidationFailed(f"{dest} is not a folder", field="dest")
    if not dest.exists():
        if not create:
            raise ValidationFailed(f"no backup folder at {dest}", field="dest")
        try:
            ensure_private_dir(dest)
        except OSError as exc:
            raise ValidationFailed(
                f"cannot create backup folder {dest}: {exc.strerror}", field="dest"
            ) from exc
    return dest


def is_garrison_schema(tables: set[str]) -> bool:
    """Whether a database with these tables is (or was) a Garrison database: any of its
    tables is enough, as a damaged or older one may lack some."""
    return bool(tables & set(EXPECTED_TABLES))


def _free_name(dest: Path, db: Path, at: float) -> Path:
    base = f"garrison-{db.stem}-{stamp(at)}"
    candidate, n = dest / f"{base}.db", 1
    while candidate.exists() or manifest_path(candidate).exists():
        n += 1
        candidate = dest / f"{base}-{n}.db"
    return candidate


def backup(
    db: Path,
    dest: Path,
    *,
    now: float,
    retention_days: float | None = DEFAULT_RETENTION_DAYS,
    progress: Progress | None = None,
    step_pages: int = STEP_PAGES,
) -> BackupResult:
    """Copy ``db`` into ``dest`` while workers keep running, then apply backup retention.

    The copy is one read snapshot (SQLite's online backup API inside a read transaction:
    writers go on, the copy does not restart), converted to a self-contained file, checked
    with ``quick_check``, then named, checksummed and described by a manifest. With
    ``retention_days`` set, Garrison backups of the same database older than that are
    removed afterwards (never the new one, never a file without a manifest).

    Raises:
        StoreUnavailable: no database at ``db``.
        NotADatabase: ``db`` is not a Garrison database or is corrupt (nothing is written).
        ValidationFailed: ``dest`` is not a folder or cannot be created.
    """
    check_path(db, create=False)
    folder = _dest_folder(dest, create=True)
    final = _free_name(folder, db, now)
    # SQLite creates the copy (and its journal) by name, so the copy is made inside a new
    # private folder with an unpredictable name: nothing can be planted at its path (a
    # link there would make SQLite write through it), and the rename puts it in place.
    with private_temp_dir(folder, f".{final.name}.") as staging:
        partial = staging / final.name
        os.close(create_private(partial))
        try:
            rows, items, version = _copy(db, partial, progress, step_pages)
            fsync_path(partial)
        except NotADatabase as exc:
            if "no backup was written" in str(exc):
                raise
            raise NotADatabase(f"{exc}; no backup was written") from exc
        os.replace(partial, final)
    manifest = BackupManifest(
        format=MANIFEST_FORMAT,
        file=final.name,
        sha256=sha256_file(final),
        size=final.stat().st_size,
        created_at=now,
        created=iso(now),
        source=os.fspath(db.absolute()),
        schema_version=version,
        rows=rows,
        items=items,
        garrison_version=garrison_version(),
        sqlite_version=sqlite3.sqlite_version,
    )
    target = manifest_path(final)
    with atomic_private_file(target) as fh:
        fh.write(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
    fsync_path(folder)
    pruned: list[Path] = []
    if retention_days is not None:
        pruned = prune_backups(folder, db, now=now, retention_days=retention_days, keep=final)
    return BackupResult(
        backup=os.fspath(final),
        manifest=manifest,
        manifest_path=os.fspath(target),
        pruned=tuple(os.fspath(p) for p in pruned),
    )


def _copy(
    db: Path, target: Path, progress: Progress | None, step_pages: int
) -> tuple[dict[str, int], dict[str, dict[str, int]], int]:
    with closing(open_db(db)) as src, closing(sqlite3.connect(target)) as dst, sqlite_errors():
        # One read transaction for the whole copy: a consistent snapshot that writers in
        # other connections (WAL) neither block nor restart.
        src.execute("BEGIN")
        missing = set(EXPECTED_TABLES) - {
            r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if missing:
            raise NotADatabase(f"{db} is not a Garrison database; no backup was written")
        rows, items = row_counts(src), items_by_state(src)
        version = int(src.execute("PRAGMA user_version").fetchone()[0])

        def advance(_status: int, remaining: int, total: int) -> None:
            if progress is not None:
                progress(total - remaining, total)

        src.backup(dst, pages=step_pages, progress=advance)
        src.execute("COMMIT")
        dst.execute("PRAGMA journal_mode = DELETE")
        check = [str(r[0]) for r in dst.execute("PRAGMA quick_check(5)")]
    if check != ["ok"]:
        raise NotADatabase(
            f"{db} is corrupt ({check[0]}); no backup was written — restore from an earlier "
            "backup (runbooks/backup-restore.md)"
        )
    return rows, items, version


def read_manifest(backup_file: Path) -> BackupManifest | None:
    """The manifest of a backup, or None when it is missing or unreadable."""
    try:
        manifest = msgspec.json.decode(manifest_path(backup_file).read_bytes(), type=BackupManifest)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return manifest if manifest.file == backup_file.name else None


def inspect_backup(path: Path, *, verify: bool = True) -> BackupInfo:
    """A backup file's manifest and whether the file matches it (hashing it if ``verify``)."""
    match = BACKUP_NAME.match(path.name)
    size = path.stat().st_size
    manifest = read_manifest(path)
    if not manifest_path(path).exists():
        status = BackupStatus.NO_MANIFEST
    elif manifest is None:
        status = BackupStatus.BAD_MANIFEST
    elif manifest.size != size:
        status = BackupStatus.SIZE_MISMATCH
    elif verify and sha256_file(path) != manifest.sha256:
        status = BackupStatus.CHECKSUM_MISMATCH
    else:
        status = BackupStatus.OK
    return BackupInfo(
        path=os.fspath(path),
        name=path.name,
        database=match.group("stem") if match else "",
        created_at=manifest.created_at if manifest else None,
        size=size,
        sha256=manifest.sha256 if manifest else None,
        status=status,
        manifest=manifest,
    )


def list_backups(dest: Path, *, verify: bool = True) -> list[BackupInfo]:
    """Garrison backups in ``dest``, oldest first, each checked against its manifest.

    Raises:
        ValidationFailed: ``dest`` is missing or not a folder.
    """
    folder = _dest_folder(dest, create=False)
    found = [
        inspect_backup(p, verify=verify)
        for p in folder.iterdir()
        if BACKUP_NAME.match(p.name) and p.is_file()
    ]
    return sorted(found, key=lambda b: (b.created_at or 0.0, b.name))


def latest_verified(dest: Path, db: Path) -> BackupInfo | None:
    """The newest backup of ``db`` in ``dest`` whose checksum verifies, if any."""
    if not dest.is_dir():
        return None
    candidates = [
        b
        for b in list_backups(dest, verify=False)
        if b.database == db.stem and b.status is BackupStatus.OK
    ]
    for info in reversed(candidates):
        checked = inspect_backup(Path(info.path))
        if checked.status is BackupStatus.OK:
            return checked
    return None


def prune_backups(
    dest: Path, db: Path, *, now: float, retention_days: float, keep: Path | None = None
) -> list[Path]:
    """Delete backups of ``db`` in ``dest`` older than ``retention_days``; return them.

    Only files named like Garrison backups of this database, with a readable manifest
    naming them, are candidates; ``keep`` is never deleted. Ages come from the manifests.
    """
    cutoff = now - retention_days * 86400.0
    removed: list[Path] = []
    for path in sorted(dest.iterdir()):
        match = BACKUP_NAME.match(path.name)
        if match is None or match.group("stem") != db.stem or path == keep or not path.is_file():
            continue
        manifest = read_manifest(path)
        if manifest is None or manifest.created_at >= cutoff:
            continue
        path.unlink()
        manifest_path(path).unlink()
        removed.append(path)
    return removed


def verify_backup(path: Path) -> BackupManifest:
    """Check a backup before it is used: manifest, size, SHA-256, ``integrity_check``,
    and that it is a Garrison database this version can open.

    Raises:
        ValidationFailed: there is no file at ``path``.
        BackupRefused: any check failed.
    """
    if not path.is_file():
        raise ValidationFailed(f"no backup at {path}", field="backup")
    info = inspect_backup(path)
    if info.status is not BackupStatus.OK or info.manifest is None:
        raise BackupRefused(f"backup {path.name} refused: {info.status.explanation}")
    try:
        with closing(open_db(path)) as conn:
            problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(5)")]
            present = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except (sqlite3.Error, NotADatabase) as exc:
        raise BackupRefused(
            f"backup {path.name} refused: it is not a readable database ({exc})"
        ) from exc
    if problems != ["ok"]:
        raise BackupRefused(f"backup {path.name} refused: integrity_check: {problems[0]}")
    if not set(EXPECTED_TABLES) <= present or version > SCHEMA_VERSION:
        raise BackupRefused(
            f"backup {path.name} refused: not a Garrison database this version can open "
            f"(schema version {version})"
        )
    return info.manifest
