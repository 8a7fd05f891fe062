"""What the operator commands share: typed errors (and the raw ones an operator tool meets
on a broken system) as one-line messages."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from policies import GarrisonError
from runtime.cli._common import EXIT_ERROR, fail, friendly_errors
from runtime.store.sqlite import translate


@contextmanager
def ops_errors() -> Iterator[None]:
    """:func:`friendly_errors`, plus sqlite3 and file-system errors as one-line messages
    (exit 1): an operator command never shows a traceback."""
    with friendly_errors():
        try:
            yield
        except sqlite3.Error as exc:
            error = translate(exc)
            if isinstance(error, GarrisonError):
                raise error from exc
            fail(f"SQLite: {exc}", EXIT_ERROR)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}", EXIT_ERROR)
