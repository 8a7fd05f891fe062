"""``restore``: put a verified backup in place of a database no process holds.

Order: verify the backup (manifest, SHA-256, ``integrity_check``); refuse if a process has
the database open; copy the backup next to the database and check the copy's SHA-256; move
the current file (and its ``-wal``) aside as ``*.pre-restore``; move the copy in; reopen it
(``quick_check``, row counts against the manifest, and a store opens it). If the reopening
fails the original is put back. A refused backup changes nothing.

Whether a process holds the database is found three ways: the use lock every open
Garrison store holds shared (``<db>.lock``; the restore holds it exclusively from this
check until the swapped file is confirmed, so no store can open the file in between),
SQLite's own locks (every connection to a WAL database keeps a shared lock while it is
open, so an exclusive lock attempt with no wait fails while any worker is running, busy or
idle), and live leases (an unexpired lease whose owner is a process on this host that is
still running, or on another host). A lease whose process on this host is gone does not
count.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import Callable
from contextlib import closing, suppress
from pathlib import Path

import msgspec

from runtime._errors import NotADatabase, ValidationFailed
from runtime._files import FILE_MODE, fsync_path, make_private
from runtime.ops._backup import (
    BackupManifest,
    is_garrison_schema,
    sha256_file,
    stamp,
    verify_backup,
)
from runtime.ops._connect import _uri, row_counts, sqlite_errors, tables
from runtime.ops._errors import BackupRefused, DatabaseInUse
from runtime.store import SQLiteStore
from runtime.store.sqlite import SQLITE_HEADER, exclusive_use

PRE_RESTORE = ".pre-restore"
_STORE_OPEN = "a Garrison store has the database open (a running worker or command?)"
_PENDING_BYTE = 0x40000000  # SQLite's lock bytes: pending, reserved, then the shared range
_SHARED_FIRST = _PENDING_BYTE + 2
_SHARED_SIZE = 510


class RestoreResult(msgspec.Struct, frozen=True):
    """A restore that happened.

    Attributes:
        db: the database now holding the backup's contents.
        backup: the backup restored.
        pre_restore: where the replaced file was kept (None if there was none).
        sha256: checksum of the restored file (as the manifest says).
        rows: rows per table after reopening.
    """

    db: str
    backup: str
    pre_restore: str | None
    sha256: str
    rows: dict[str, int]


def holders(db: Path, *, now: float, hostname: str | None = None) -> list[str]:
    """What holds ``db`` open: descriptions of lock holders and live lease owners.

    An empty list means no process was found using it.
    """
    if not db.exists():
        return []
    found: list[str] = []
    if _locked(db):
        found.append("another process has the database open (a running worker?)")
    found.extend(_lease_holders(db, now, hostname or socket.gethostname()))
    return found


def _locked(db: Path) -> bool:
    conn = sqlite3.connect(_uri(db, "rw"), uri=True, isolation_level=None, timeout=0)
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        return _locked_by_fcntl(db)
    except sqlite3.DatabaseError:  # not a database: SQLite cannot lock it; ask the kernel
        return _locked_by_fcntl(db)
    finally:
        conn.close()


def _locked_by_fcntl(db: Path) -> bool:
    """Whether another process holds one of SQLite's lock bytes (POSIX advisory locks)."""
    fd = os.open(db, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _SHARED_SIZE + 2, _PENDING_BYTE)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return True
        raise  # pragma: no cover - an unexpected I/O error
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, _SHARED_SIZE + 2, _PENDING_BYTE)
        return False
    finally:
        os.close(fd)


def _lease_holders(db: Path, now: float, hostname: str) -> list[str]:
    try:
        with closing(sqlite3.connect(_uri(db, "ro"), uri=True, timeout=0)) as conn:
            rows = conn.execute(
                "SELECT lease_owner, max(lease_expires_at) FROM items WHERE state = 'leased' "
                "AND lease_expires_at > ? GROUP BY lease_owner",
                (now,),
            ).fetchall()
    except sqlite3.Error:
        return []  # unreadable: the lock probe is all there is
    found = []
    for owner, until in rows:
        host, _, rest = str(owner).partition(":")
        pid = rest.partition(":")[0]
        if host == hostname and pid.isdigit() and not pid_alive(int(pid)):
            continue
        left = max(0.0, float(until) - now)
        found.append(f"worker {owner} holds leases (for {left:.0f} s more)")
    return found


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True


def restore(
    backup: Path,
    db: Path,
    *,
    clock: Callable[[], float] = time.time,
    hostname: str | None = None,
    force: bool = False,
) -> RestoreResult:
    """Replace ``db`` with the contents of ``backup``, keeping the old file as
    ``<db>.pre-restore`` (mode 0600).

    A file at ``db`` that is not a Garrison database (not SQLite, or another
    application's SQLite database) is refused unless ``force``: a mistyped ``--db`` must not
    move someone's file aside. A damaged Garrison database is replaced: that is what
    restore is for.

    Raises:
        ValidationFailed: no backup file, or ``db``'s folder is missing or ``db`` is a folder.
        NotADatabase: ``db`` is not a Garrison database and ``force`` is False (nothing was
            changed).
        BackupRefused: the backup failed verification (nothing was changed), or the restored
            database could not be reopened (the original was put back).
        DatabaseInUse: a process holds ``db`` (nothing was changed).
    """
    manifest = verify_backup(backup)
    if db.is_dir():
        raise ValidationFailed(f"{db} is a folder, not a database file", field="db")
    if not db.parent.is_dir():
        raise ValidationFailed(f"folder {db.parent} does not exist", field="db")
    foreign = None if force else _not_garrison(db)
    if foreign is not None:
        raise NotADatabase(
            f"{db} is not a Garrison database ({foreign}); nothing was changed — check --db, "
            "or pass --force to replace it anyway (it is kept as "
            f"{db.name}{PRE_RESTORE})"
        )
    # Exclusive from the check to the confirmed swap: no store can open the file in
    # between and go on writing into the one moved aside (see runtime/store/_use_lock.py).
    with exclusive_use(db) as alone:
        using = [] if alone else [_STORE_OPEN]
        using.extend(holders(db, now=clock(), hostname=hostname))
        if using:
            raise DatabaseInUse(
                f"{db} is in use: {'; '.join(using)} — stop the workers first, then restore",
                holders=tuple(using),
            )
        return _swap(backup, db, manifest, clock)


def _swap(
    backup: Path, db: Path, manifest: BackupManifest, clock: Callable[[], float]
) -> RestoreResult:
    # A new file with an unpredictable name (O_EXCL, mode 0600): nothing planted next to
    # the database is written through, and the rename below replaces rather than follows.
    fd, name = tempfile.mkstemp(prefix=f".{db.name}.", suffix=".restoring", dir=db.parent)
    staging = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, backup.open("rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
            # 0600 whatever the replaced file's mode: the restored database holds the same
            # payloads and errors, and Garrison creates every database private.
            os.fchmod(out.fileno(), FILE_MODE)
            out.flush()
            os.fsync(out.fileno())
        if sha256_file(staging) != manifest.sha256:
            raise BackupRefused(
                f"the copy of {backup.name} does not match its checksum (disk error?); "
                "nothing was changed"
            )
    except BaseException:
        with suppress(FileNotFoundError):
            staging.unlink()
        raise
    kept = _move_aside(db, clock())
    os.replace(staging, db)
    fsync_path(db.parent)
    try:
        rows = _confirm(db, manifest, clock)
    except Exception as exc:
        _put_back(db, kept)
        raise BackupRefused(
            f"the restored database could not be reopened ({exc}); the original was put back"
        ) from exc
    return RestoreResult(
        db=os.fspath(db),
        backup=os.fspath(backup),
        pre_restore=None if kept is None else os.fspath(kept),
        sha256=manifest.sha256,
        rows=rows,
    )


def _not_garrison(db: Path) -> str | None:
    """Why the file at ``db`` is not a Garrison database, or None if it is one (perhaps a
    damaged one: unreadable past its header, or with a destroyed header but a Garrison use
    lock next to it), is empty, or is missing."""
    try:
        with db.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return None
    if not header:
        return None
    if header != SQLITE_HEADER:
        # A Garrison store opening a SQLite file leaves its use lock next to it: with one
        # there, this is a Garrison database whose first page was destroyed.
        return None if db.with_name(db.name + ".lock").exists() else "not a SQLite file"
    try:
        with closing(sqlite3.connect(_uri(db, "ro"), uri=True, timeout=0)) as conn:
            found = tables(conn)
    except sqlite3.Error:
        return None  # unreadable past its header: a damaged database, restore's reason to be
    if found and not is_garrison_schema(found):
        return f"a SQLite database of another application (tables: {', '.join(sorted(found)[:5])})"
    return None


def _side_files(path: Path) -> dict[str, Path]:
    return {suffix: path.with_name(path.name + suffix) for suffix in ("-wal", "-journal")}


def _move_aside(db: Path, now: float) -> Path | None:
    """Move the database and its journals out of the way; drop its ``-shm`` index."""
    if not db.exists():
        return None
    kept = db.with_name(db.name + PRE_RESTORE)
    if kept.exists():
        kept = db.with_name(f"{db.name}.{stamp(now)}{PRE_RESTORE}")
    os.replace(db, kept)
    make_private(kept)  # it holds the same payloads; it may come from a world-readable era
    for suffix, side in _side_files(db).items():
        if side.exists():
            os.replace(side, kept.with_name(kept.name + suffix))
            make_private(kept.with_name(kept.name + suffix))
    with suppress(FileNotFoundError):
        db.with_name(db.name + "-shm").unlink()  # a cache of the WAL, rebuilt on open
    return kept


def _put_back(db: Path, kept: Path | None) -> None:
    for path in (db, *_side_files(db).values(), db.with_name(db.name + "-shm")):
        with suppress(FileNotFoundError):
            path.unlink()
    if kept is not None:
        os.replace(kept, db)
        for suffix, side in _side_files(kept).items():
            if side.exists():
                os.replace(side, db.with_name(db.name + suffix))


def _confirm(db: Path, manifest: BackupManifest, clock: Callable[[], float]) -> dict[str, int]:
    with db.open("rb") as fh:
        if fh.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise BackupRefused("the restored file is not a SQLite database")
    with closing(sqlite3.connect(_uri(db, "ro"), uri=True)) as conn, sqlite_errors():
        check = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)")]
        rows = row_counts(conn)
    if check != ["ok"]:
        raise BackupRefused(f"quick_check: {check[0]}")
    if rows != manifest.rows:
        raise BackupRefused(f"row counts {rows} differ from the manifest's {manifest.rows}")
    SQLiteStore.open(db, create=False, clock=clock).close()  # a store can use it (WAL, schema)
    return rows
