"""The interpreter settings the garrison commands apply."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime import ValidationFailed
from runtime.cli._app import app
from runtime.tuning import (
    DEFAULT_SWITCH_INTERVAL_S,
    SWITCH_INTERVAL_ENV,
    switch_interval_from_env,
    tune_interpreter,
)


@pytest.fixture(autouse=True)
def restore_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_tune_sets_the_interval_and_returns_the_previous_one() -> None:
    sys.setswitchinterval(0.005)
    assert tune_interpreter(0.001) == pytest.approx(0.005)
    assert sys.getswitchinterval() == pytest.approx(0.001)
    assert tune_interpreter(None) == pytest.approx(0.001)
    assert sys.getswitchinterval() == pytest.approx(0.001)


@pytest.mark.parametrize("bad", [0.0, -1.0, 1e-6, 0.5, float("nan")])
def test_out_of_bounds_intervals_are_refused(bad: float) -> None:
    before = sys.getswitchinterval()
    with pytest.raises(ValidationFailed, match="switch interval"):
        tune_interpreter(bad)
    assert sys.getswitchinterval() == before


def test_environment_selects_the_interval() -> None:
    assert switch_interval_from_env({}) == DEFAULT_SWITCH_INTERVAL_S
    assert switch_interval_from_env({SWITCH_INTERVAL_ENV: " 0.002 "}) == 0.002
    assert switch_interval_from_env({SWITCH_INTERVAL_ENV: "default"}) is None
    with pytest.raises(ValidationFailed, match=SWITCH_INTERVAL_ENV):
        switch_interval_from_env({SWITCH_INTERVAL_ENV: "fast"})


def test_commands_apply_it_and_refuse_a_bad_value(tmp_path: Path) -> None:
    sys.setswitchinterval(0.005)
    runner = CliRunner()
    runner.invoke(app, ["events", "--db", f"{tmp_path}/missing.db"])
    # Applied before the command ran (which itself failed: there is no database).
    assert sys.getswitchinterval() == pytest.approx(DEFAULT_SWITCH_INTERVAL_S)
    result = runner.invoke(
        app, ["events", "--db", f"{tmp_path}/t.db"], env={SWITCH_INTERVAL_ENV: "x"}
    )
    assert result.exit_code == 2
    assert "GARRISON_SWITCH_INTERVAL" in result.output
