"""SQLite specifics that operations tools need (doctor, backup, restore, maintenance).

The queue API is in :mod:`runtime.store`; this module names what is only meaningful for
a SQLite database file: its schema, how a path is checked, how SQLite errors become
Garrison errors, the use lock a restore takes, and the figures read straight from a
connection (diagnostics bundles read a copy of the database, with no store open).
"""

from runtime.store._queries import queue_metrics
from runtime.store._schema import EXPECTED_INDEXES, EXPECTED_TABLES, MIGRATIONS, SCHEMA_VERSION
from runtime.store._sqlite_backend import SQLiteBackend
from runtime.store._sqlite_errors import translate
from runtime.store._sqlite_open import SQLITE_HEADER, check_path
from runtime.store._use_lock import exclusive_use, lock_path, shared_use

__all__ = [
    "EXPECTED_INDEXES",
    "EXPECTED_TABLES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SQLITE_HEADER",
    "SQLiteBackend",
    "check_path",
    "exclusive_use",
    "lock_path",
    "queue_metrics",
    "shared_use",
    "translate",
]
