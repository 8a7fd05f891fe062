"""How the ``garrison`` app reports errors: usage errors on one line, help left readable,
and the shared checks of text options and durations."""

from __future__ import annotations

import pytest
import typer
import typer.main

from runtime._errors import ValidationFailed
from runtime.cli._app import _OneLineErrors
from runtime.cli._common import (
    MAX_DURATION_S,
    duration,
    fail,
    friendly_errors,
    one_line,
    text_option,
)
from tests.runtime.cli.conftest import Garrison


def test_help_stays_readable(garrison: Garrison) -> None:
    code, out, err = garrison("enqueue", "--help", db=False)
    assert code == 0 and err == ""
    assert "--from-file" in out and "one transaction" in out and out.count("\n") > 10


def test_no_command_shows_the_help(garrison: Garrison) -> None:
    code, out, err = garrison(db=False)
    assert code == 2 and "enqueue" in out + err and "garrison: error" not in err
    code, out, err = garrison("dlq", db=False)
    assert code == 2 and "replay" in out + err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("enqueue", "--priority", "high"), "garrison: error: Invalid value for '--priority'"),
        (("dlq", "list", "--reason", "garbage"), "'garbage' is not one of"),
        (("nope",), "No such command 'nope'. (see 'garrison --help')"),
        (("dlq", "lst"), "(see 'garrison dlq --help')"),
        (("enqueue", "--topic"), "Option '--topic' requires an argument"),
    ],
)
def test_usage_errors_are_one_line_with_a_pointer_to_help(
    garrison: Garrison, argv: tuple[str, ...], expected: str
) -> None:
    code, out, err = garrison(*argv, db=False)
    assert code == 2 and out == ""
    assert err.startswith("garrison: error: ") and err.count("\n") == 1
    assert expected in err and "╭" not in err and "Usage:" not in err


def test_one_line_joins_lines_and_escapes_what_a_terminal_would_act_on() -> None:
    assert one_line("first\n  second \n\n") == "first second"
    assert one_line("first\nsecond", first=True) == "first"
    assert one_line("\x1b[2Jwiped \udcff") == "\\x1b[2Jwiped \\udcff"
    assert one_line("  ") == "unknown error"


def test_fail_prints_the_first_line_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited:
        fail("boom\ntraceback follows", 2)
    assert exited.value.exit_code == 2
    assert capsys.readouterr().err == "garrison: error: boom\n"


def test_text_option() -> None:
    assert text_option(None, "--key") is None
    assert text_option("café", "--key") == "café"
    with pytest.raises(ValidationFailed, match=r"--key is not valid UTF-8 \(byte 2") as refused:
        text_option("k\udcff", "--key")
    assert refused.value.field == "key"


def test_duration_bounds() -> None:
    assert duration("2h", "--since") == 7200.0
    assert duration("0", "--older-than", allow_zero=True) == 0.0
    assert duration(f"{int(MAX_DURATION_S)}", "--since") == MAX_DURATION_S
    for text in (f"{int(MAX_DURATION_S) + 1}", "9" * 400):
        with pytest.raises(ValidationFailed, match="longer than 100 years"):
            duration(text, "--since")
    with pytest.raises(ValidationFailed, match="not valid UTF-8"):
        duration("1\udcff", "--since")


def test_a_unicode_error_a_command_missed_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited, friendly_errors():
        "\udcff".encode()
    assert exited.value.exit_code == 2
    assert capsys.readouterr().err.startswith("garrison: error: input is not valid UTF-8 text")


def test_the_root_command_outside_standalone_mode_and_on_abort(
    capsys: pytest.CaptureFixture[str],
) -> None:
    demo = typer.Typer(cls=_OneLineErrors, add_completion=False)

    @demo.command()
    def give_up() -> None:
        raise typer.Abort()

    @demo.command()
    def answer() -> int:
        return 42

    command = typer.main.get_command(demo)
    assert command.main(["answer"], standalone_mode=False) == 42
    with pytest.raises(SystemExit) as exited:
        command.main(["give-up"])
    assert exited.value.code == 1
    assert capsys.readouterr().err == "garrison: error: aborted\n"
