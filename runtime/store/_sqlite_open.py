"""Opening a SQLite database safely: path checks, PRAGMAs, migrations."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from runtime._errors import NotADatabase, StoreUnavailable
from runtime.store._config import StoreConfig
from runtime.store._schema import EXPECTED_TABLES, SCHEMA_VERSION, migrate
from runtime.store._sqlite_errors import translate

SQLITE_HEADER = b"SQLite format 3\x00"


def check_path(path: Path, *, create: bool) -> None:
    """Refuse paths that cannot hold a Garrison database, before SQLite touches them.

    Raises:
        StoreUnavailable: missing (and ``create`` is False), a directory, or unreadable.
        NotADatabase: a file that is not SQLite.
    """
    if path.is_dir():
        raise StoreUnavailable(f"{path} is a directory, not a database file")
    if not path.exists():
        if not create:
            raise StoreUnavailable(f"no database at {path}")
        if not path.parent.is_dir():
            raise StoreUnavailable(f"cannot create {path}: folder {path.parent} does not exist")
        return
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreUnavailable(f"cannot read {path}: {exc.strerror}") from exc
    if header and header != SQLITE_HEADER:
        raise NotADatabase(f"{path} is not a SQLite database (bad file header)")


def connect(path: Path, config: StoreConfig, *, writer: bool) -> sqlite3.Connection:
    """A configured connection; the writer's busy timeout is 0 because it retries itself."""
    try:
        conn = sqlite3.connect(
            os.fspath(path), isolation_level=None, check_same_thread=False, timeout=0
        )
    except sqlite3.Error as exc:
        raise translate(exc) from exc
    try:
        busy_ms = 0 if writer else int(config.busy_timeout_s * 1000)
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA synchronous = {config.synchronous.value}")
        conn.execute(f"PRAGMA cache_size = {-1024 * int(config.cache_mib)}")
        if writer and config.max_page_count is not None:
            conn.execute(f"PRAGMA max_page_count = {int(config.max_page_count)}")
        if not writer:
            conn.execute("PRAGMA query_only = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc) from exc
    return conn


def prepare(path: Path, config: StoreConfig) -> int:
    """Switch the database to WAL and migrate its schema; return the version found.

    A database that is not Garrison's is refused before anything in it is changed.

    Raises:
        NotADatabase: the file is corrupt or belongs to something else.
        SchemaTooNew: the database is from a newer Garrison.
    """
    conn = connect(path, config, writer=False)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and tables - {"sqlite_sequence"}:
            raise NotADatabase(f"{path} is a SQLite database but not a Garrison one")
        if 0 < version <= SCHEMA_VERSION and not set(EXPECTED_TABLES) <= tables:
            raise NotADatabase(
                f"{path} is a SQLite database but not a Garrison one (user_version "
                f"{version} without Garrison's tables)"
            )
        conn.execute("PRAGMA query_only = OFF")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreUnavailable(f"{path}: WAL mode could not be enabled (got {mode})")
        return migrate(conn)
    except sqlite3.Error as exc:
        raise translate(exc) from exc
    finally:
        conn.close()
