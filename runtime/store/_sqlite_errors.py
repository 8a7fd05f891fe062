"""Turning sqlite3's errors into Garrison's typed ones."""

from __future__ import annotations

import sqlite3

from runtime._errors import NotADatabase, StoreBusy, StoreFull, StoreUnavailable


def translate(exc: sqlite3.Error) -> Exception:
    """The Garrison error a caller can act on for a sqlite3 error.

    Errors that are bugs (a wrong SQL statement) are returned unchanged.
    """
    text = str(exc)
    # The extended name (SQLITE_IOERR_SHORT_READ, SQLITE_CANTOPEN_ISDIR) reduced to its
    # primary code, which is what the checks below name.
    code = "_".join(str(getattr(exc, "sqlite_errorname", "") or "").split("_")[:2])
    if code == "SQLITE_FULL" or "database or disk is full" in text:
        error: Exception = StoreFull(
            "the database or disk is full; nothing from this operation was written "
            "(free space or purge old rows, then retry)"
        )
    elif code in ("SQLITE_BUSY", "SQLITE_LOCKED") or "database is locked" in text:
        error = StoreBusy("the database is locked by another writer (busy timeout passed)")
    elif (
        code in ("SQLITE_NOTADB", "SQLITE_CORRUPT")
        or "not a database" in text
        or "malformed" in text
    ):
        error = NotADatabase(f"the database file is corrupt or not a database: {text}")
    elif code in ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_IOERR") or (
        isinstance(exc, sqlite3.OperationalError)
        and ("unable to open" in text or "readonly" in text or "disk I/O" in text)
    ):
        error = StoreUnavailable(f"the database cannot be written: {text}")
    else:
        return exc
    error.__cause__ = exc
    return error
