"""Connections the operator toolkit opens itself (never through a store), and small
queries several tools share."""

from __future__ import annotations

import os
import shlex
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from runtime.store.sqlite import EXPECTED_TABLES, check_path, translate


def _uri(path: Path, mode: str) -> str:
    return f"file:{urllib.parse.quote(os.fspath(path.absolute()))}?mode={mode}"


def open_db(path: Path, *, write: bool = False, busy_timeout_s: float = 5.0) -> sqlite3.Connection:
    """A connection to an existing database: read-only unless ``write``; never creates it.

    Raises:
        StoreUnavailable: the path is missing, a directory, or unreadable.
        NotADatabase: the file is not SQLite.
    """
    check_path(path, create=False)
    try:
        conn = sqlite3.connect(
            _uri(path, "rw" if write else "ro"), uri=True, isolation_level=None, timeout=0
        )
    except sqlite3.Error as exc:
        raise translate(exc) from exc
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    return conn


@contextmanager
def connection(
    path: Path, *, write: bool = False, busy_timeout_s: float = 5.0
) -> Iterator[sqlite3.Connection]:
    """:func:`open_db` for a ``with`` block; sqlite3 errors come out as Garrison's typed
    ones (``NotADatabase``, ``StoreBusy``, ``StoreFull``, ``StoreUnavailable``)."""
    with closing(open_db(path, write=write, busy_timeout_s=busy_timeout_s)) as conn:
        with sqlite_errors():
            yield conn


@contextmanager
def sqlite_errors() -> Iterator[None]:
    """Re-raise sqlite3 errors as Garrison's typed ones."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc) from exc


def shell_path(path: Path) -> str:
    """A path as an operator would paste it into a shell."""
    return shlex.quote(os.fspath(path))


def queue_flag(queue: str) -> str:
    """`` --queue Q`` for commands about a queue other than ``default``."""
    return "" if queue == "default" else f" --queue {shlex.quote(queue)}"


def tables(conn: sqlite3.Connection) -> set[str]:
    """Names of the tables in the database."""
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows of each of Garrison's tables that exist."""
    present = tables(conn)
    return {
        t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
        for t in EXPECTED_TABLES
        if t in present
    }


def items_by_state(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Items per queue and state (queues and states that have any)."""
    out: dict[str, dict[str, int]] = {}
    if "items" not in tables(conn):
        return out
    for queue, state, n in conn.execute(
        "SELECT queue, state, count(*) FROM items GROUP BY queue, state ORDER BY queue, state"
    ):
        out.setdefault(str(queue), {})[str(state)] = int(n)
    return out


def queues(conn: sqlite3.Connection) -> list[str]:
    """Every queue that has items or dead letters, sorted (``default`` when none)."""
    names = {
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT queue FROM items UNION SELECT DISTINCT queue FROM dead_letters"
        )
    }
    return sorted(names) or ["default"]
