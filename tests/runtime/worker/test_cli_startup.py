"""``garrison work`` loads only the command it runs; help still lists every command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runtime.cli import app
from runtime.cli._app import COMMANDS

PROBE = """
import sys
from runtime.cli import app
try:
    app(["work", "--help"])
except SystemExit:
    pass
print(",".join(sorted(m for m in sys.modules if m.startswith("runtime.cli."))))
"""


def test_work_imports_no_other_command_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(done.stdout.strip().splitlines()[-1].split(","))
    assert "runtime.cli._work" in loaded
    others = {module for module, _ in COMMANDS.values()} - {"runtime.cli._work"}
    assert not loaded & others


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f" {name} " in result.output
    assert "Inspect and act on dead letters." in result.output


def test_concurrency_defaults_to_the_threads_for_a_sync_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime.cli import _work

    (tmp_path / "cc_handlers.py").write_text(
        "def sync(item):\n    return None\n\nasync def coro(item):\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[int] = []
    real = _work.worker_config

    def spy(**options: Any) -> Any:
        seen.append(options["concurrency"])
        return real(**options)

    monkeypatch.setattr(_work, "worker_config", spy)
    db = str(tmp_path / "q.db")
    runner = CliRunner()
    for args in (
        ["--handler", "cc_handlers:sync", "--threads", "12"],
        ["--handler", "cc_handlers:coro"],
        ["--handler", "cc_handlers:sync", "--concurrency", "3"],
    ):
        result = runner.invoke(app, ["work", "--db", db, "--drain", "--loop-watch", "0", *args])
        assert result.exit_code == 0, result.output
    assert seen == [12, _work.ASYNC_CONCURRENCY, 3]
