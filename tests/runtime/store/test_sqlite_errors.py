"""Translating sqlite3 errors into Garrison's typed ones."""

from __future__ import annotations

import sqlite3

import pytest

from runtime import NotADatabase, StoreBusy, StoreFull, StoreUnavailable
from runtime.store.sqlite import translate


def error(text: str, name: str | None = None) -> sqlite3.Error:
    exc = sqlite3.OperationalError(text)
    if name is not None:
        exc.sqlite_errorname = name  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (error("database or disk is full"), StoreFull),
        (error("x", "SQLITE_FULL"), StoreFull),
        (error("database is locked"), StoreBusy),
        (error("x", "SQLITE_BUSY_SNAPSHOT"), StoreBusy),
        (error("x", "SQLITE_LOCKED"), StoreBusy),
        (error("file is not a database"), NotADatabase),
        (error("database disk image is malformed"), NotADatabase),
        (error("x", "SQLITE_CORRUPT_INDEX"), NotADatabase),
        (error("x", "SQLITE_NOTADB"), NotADatabase),
        (error("unable to open database file"), StoreUnavailable),
        (error("attempt to write a readonly database"), StoreUnavailable),
        (error("disk I/O error"), StoreUnavailable),
        (error("x", "SQLITE_IOERR_SHORT_READ"), StoreUnavailable),
        (error("x", "SQLITE_CANTOPEN_ISDIR"), StoreUnavailable),
    ],
)
def test_operational_errors_become_typed_errors(
    exc: sqlite3.Error, expected: type[Exception]
) -> None:
    translated = translate(exc)
    assert type(translated) is expected
    assert translated.__cause__ is exc


def test_bugs_are_returned_unchanged() -> None:
    exc = sqlite3.OperationalError("no such table: nowhere")
    assert translate(exc) is exc
    integrity = sqlite3.IntegrityError("UNIQUE constraint failed")
    assert translate(integrity) is integrity
