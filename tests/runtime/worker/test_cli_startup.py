"""``garrison work`` loads only the command it runs; help still lists every command."""

from __future__ import annotations

import subprocess
import sys

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
