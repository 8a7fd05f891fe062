"""The ``garrison`` command: its sub-commands, registered in one place."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from runtime._errors import ValidationFailed
from runtime.cli import _dlq
from runtime.cli._common import EXIT_BAD_INPUT, EXIT_ERROR, fail, one_line
from runtime.cli._demo import demo
from runtime.cli._enqueue import enqueue
from runtime.cli._health import health
from runtime.cli._metrics import events, queue_metrics
from runtime.cli._ops import db_stats_command, diagnostics, doctor, maintenance, purge_command
from runtime.cli._ops_backup import backup_command, backups_command, restore_command
from runtime.cli._run import run
from runtime.cli._top import top
from runtime.cli._work import work
from runtime.tuning import switch_interval_from_env, tune_interpreter


class _OneLineErrors(TyperGroup):
    """The root command, reporting usage errors as ``garrison: error: ...`` on one line.

    Click's own report is a usage line, a hint and the error (Typer draws a box around
    it): a script reading stderr, or an operator under pressure, gets one line that
    names the option and where help is, with the same exit code (2 for usage errors).
    Help itself (``--help``, or a group called without a command) stays as it is.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as exc:
            _report(exc)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("garrison: error: aborted", err=True)
            sys.exit(EXIT_ERROR)
        # Non-standalone, Click returns typer.Exit's code (0 for --help) or the command's
        # result, which is None for every garrison command.
        sys.exit(code if isinstance(code, int) else 0)


def _report(exc: typer.TyperException) -> None:
    # A group called without a command raises this with its help already rendered
    # (Typer's rich help prints as it formats); Click does not export the class.
    if type(exc).__name__ == "NoArgsIsHelpError":
        if exc.format_message().strip():
            typer.echo(exc.format_message(), err=True)
        return
    ctx = getattr(exc, "ctx", None)
    message = exc.format_message()
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    typer.echo(f"garrison: error: {one_line(message)}{hint}", err=True)


app = typer.Typer(
    name="garrison",
    help="Garrison: supervised workers over a durable queue.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=_OneLineErrors,
)


@app.callback()
def _process_settings() -> None:
    """Garrison: supervised workers over a durable queue.

    Every command runs with the GIL switch interval of ``runtime.tuning`` (set
    GARRISON_SWITCH_INTERVAL to seconds, or to 'default' for Python's own).
    """
    try:
        tune_interpreter(switch_interval_from_env())
    except ValidationFailed as exc:
        fail(str(exc), EXIT_BAD_INPUT)


app.command()(enqueue)
app.command()(work)
app.command()(run)
app.command()(demo)
app.command("queue-metrics")(queue_metrics)
app.command()(events)
app.command()(health)
app.add_typer(_dlq.app, name="dlq")
app.command()(doctor)
app.command("db-stats")(db_stats_command)
app.command()(maintenance)
app.command("purge")(purge_command)
app.command()(diagnostics)
app.command("backup")(backup_command)
app.command("backups")(backups_command)
app.command("restore")(restore_command)
app.command()(top)
