from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.cli import app


class Garrison:
    """Runs ``garrison`` in-process against one database."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.runner = CliRunner()

    def __call__(self, *args: str, db: bool = True) -> tuple[int, str, str]:
        argv = list(args) + (["--db", str(self.db)] if db else [])
        result = self.runner.invoke(app, argv, catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    def rows(self) -> dict[str, int]:
        """Row counts of every table: the 'nothing changed' fingerprint."""
        if not self.db.exists():
            return {}
        with sqlite3.connect(self.db) as conn:
            return {
                t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("items", "dead_letters", "audit")
            }


@pytest.fixture
def garrison(tmp_path: Path) -> Garrison:
    return Garrison(tmp_path / "cli.db")


@pytest.fixture
def make_dead_letter(garrison: Garrison) -> Callable[[], str]:
    """Enqueue an item and dead-letter it through a real worker; return its id."""

    def make() -> str:
        code, out, _ = garrison("enqueue", "--topic", "t", "--payload", '{"x": 1}')
        assert code == 0
        code, _, err = garrison(
            "work",
            "--handler",
            "tests.runtime.cli.handlers:terminal",
            "--drain",
            "--poll-interval",
            "0.01",
        )
        assert code == 0, err
        return out.strip()

    return make
