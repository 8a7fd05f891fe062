"""``db-stats``: how big the database is and what it holds."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from runtime.ops._connect import connection, items_by_state, row_counts


class DbStats(msgspec.Struct, frozen=True):
    """A snapshot of a database's size and contents.

    Attributes:
        path: the database file.
        file_bytes: size of the main file.
        wal_bytes: size of the ``-wal`` file (0 when there is none).
        page_size: bytes per page.
        page_count: pages in the main file.
        freelist_count: unused pages (``VACUUM`` returns them to the file system).
        journal_mode: ``wal`` for a database a store has opened.
        schema_version: Garrison's schema version (``PRAGMA user_version``).
        rows: rows per table.
        items: items per queue and state.
        dead_letters: dead letters per queue, ``live`` and ``archived``.
    """

    path: str
    file_bytes: int
    wal_bytes: int
    page_size: int
    page_count: int
    freelist_count: int
    journal_mode: str
    schema_version: int
    rows: dict[str, int]
    items: dict[str, dict[str, int]]
    dead_letters: dict[str, dict[str, int]]


def file_size(path: Path) -> int:
    """Size of a file in bytes, 0 when it does not exist."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def wal_path(path: Path) -> Path:
    """The write-ahead log next to a database file."""
    return path.with_name(path.name + "-wal")


def db_stats(path: Path) -> DbStats:
    """Page counts, file and WAL sizes, and rows per table and state; read-only.

    Raises:
        StoreUnavailable: no database at ``path``.
        NotADatabase: the file is not a database, or is too corrupt to read.
    """
    with connection(path) as conn:

        def pragma(name: str) -> int | str:
            value: int | str = conn.execute(f"PRAGMA {name}").fetchone()[0]
            return value

        dead: dict[str, dict[str, int]] = {}
        rows = row_counts(conn)
        if "dead_letters" in rows:
            for queue, archived, n in conn.execute(
                "SELECT queue, archived_at IS NOT NULL, count(*) FROM dead_letters "
                "GROUP BY queue, archived_at IS NOT NULL"
            ):
                dead.setdefault(str(queue), {"live": 0, "archived": 0})[
                    "archived" if archived else "live"
                ] = int(n)
        return DbStats(
            path=os.fspath(path),
            file_bytes=file_size(path),
            wal_bytes=file_size(wal_path(path)),
            page_size=int(pragma("page_size")),
            page_count=int(pragma("page_count")),
            freelist_count=int(pragma("freelist_count")),
            journal_mode=str(pragma("journal_mode")),
            schema_version=int(pragma("user_version")),
            rows=rows,
            items=items_by_state(conn),
            dead_letters=dead,
        )
