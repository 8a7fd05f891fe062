"""``garrison top``: options, one-line errors, and a headless run over a real database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runtime.cli import app
from runtime.tui import TopApp
from tests.runtime.tui.conftest import Clock

Seeded = tuple[Path, dict[str, list[str]]]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_help_names_the_modes_and_keys() -> None:
    code, out, _ = invoke("top", "--help")
    assert code == 0
    for word in ("--db", "--queue", "--refresh", "--window", "--dead-letters", "--url"):
        assert word in out
    assert "does not exist so far" in out


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        ("--refresh", "0.1", "refresh_s"),
        ("--window", "0", "window_s"),
        ("--dead-letters", "5000", "dead_letter_rows"),
    ],
)
def test_bad_option_is_one_line_exit_2(seeded: Seeded, option: str, value: str, field: str) -> None:
    path, _ = seeded
    code, out, err = invoke("top", "--db", str(path), option, value)
    assert code == 2 and out == ""
    assert err.startswith("garrison: error: ") and field in err and err.count("\n") == 1


def test_missing_database_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    code, _, err = invoke("top", "--db", str(missing))
    assert code == 1 and "no database" in err and err.count("\n") == 1
    assert not missing.exists()


def test_runs_headless_over_the_database(
    seeded: Seeded, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = seeded
    seen: list[TopApp] = []

    class OneRefresh(TopApp):
        async def run_async(self, **kwargs: Any) -> None:
            seen.append(self)
            await super().run_async(headless=True, size=(100, 30))

        async def refresh_now(self) -> None:
            await super().refresh_now()
            self.exit()

    monkeypatch.setattr("runtime.tui.TopApp", OneRefresh)
    code, _, err = invoke("top", "--db", str(path), "--refresh", "0.5", "--window", "120")
    assert code == 0, err
    (top,) = seen
    assert top.refreshes == 1 and top.config.window_s == 120 and top.config.refresh_s == 0.5
    assert top.snapshot is not None and top.snapshot.waiting == 4
