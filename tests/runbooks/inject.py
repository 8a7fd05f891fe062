"""Faults a runbook test injects where a runbook says ``<!-- runbook-test: FAULT -->``.

Run as ``python -m tests.runbooks.inject FAULT DB``.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path


def corrupt_db(db: Path) -> None:
    """Overwrite pages in the middle of the database file, as a disk error would."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    size = db.stat().st_size
    with db.open("r+b") as fh:
        fh.seek(size // 3)
        fh.write(b"\xa5" * (size // 3))


FAULTS: dict[str, Callable[[Path], None]] = {"corrupt-db": corrupt_db}


def main(argv: list[str]) -> int:
    """Inject ``argv[0]`` into the database ``argv[1]``."""
    fault, db = argv
    FAULTS[fault](Path(db))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
