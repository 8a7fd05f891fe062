"""The ``garrison`` command: its sub-commands, registered in one place."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandInfo

from runtime._errors import ValidationFailed
from runtime.cli._common import EXIT_BAD_INPUT, EXIT_ERROR, fail, one_line
from runtime.tuning import switch_interval_from_env, tune_interpreter

# Every command, in help order (Typer lists groups after commands): name -> (module,
# attribute). A command's module is imported only when that command runs (or help lists
# it): ``garrison work`` pays for the pipeline, not for replay, the demo, ops and backups.
COMMANDS: dict[str, tuple[str, str]] = {
    "enqueue": ("runtime.cli._enqueue", "enqueue"),
    "work": ("runtime.cli._work", "work"),
    "run": ("runtime.cli._run", "run"),
    "demo": ("runtime.cli._demo", "demo"),
    "queue-metrics": ("runtime.cli._metrics", "queue_metrics"),
    "events": ("runtime.cli._metrics", "events"),
    "health": ("runtime.cli._health", "health"),
    "doctor": ("runtime.cli._ops", "doctor"),
    "db-stats": ("runtime.cli._ops", "db_stats_command"),
    "maintenance": ("runtime.cli._ops", "maintenance"),
    "purge": ("runtime.cli._ops", "purge_command"),
    "diagnostics": ("runtime.cli._ops", "diagnostics"),
    "backup": ("runtime.cli._ops_backup", "backup_command"),
    "backups": ("runtime.cli._ops_backup", "backups_command"),
    "restore": ("runtime.cli._ops_backup", "restore_command"),
    "top": ("runtime.cli._top", "top"),
    "dlq": ("runtime.cli._dlq", "app"),
}


def _load(name: str, rich_markup_mode: Any) -> Any:
    """Import command ``name``'s module and build its Click command (a group for ``dlq``)."""
    module, attribute = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    info = CommandInfo(name=name, callback=target, cls=TyperCommand)
    return typer.main.get_command_from_info(
        info, pretty_exceptions_short=True, rich_markup_mode=rich_markup_mode
    )


class _OneLineErrors(TyperGroup):
    """The root command, reporting usage errors as ``garrison: error: ...`` on one line.

    Its sub-commands (:data:`COMMANDS`) load on first use, so a command imports only
    the modules it runs; help still lists them all, in :data:`COMMANDS` order.

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

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(n for n in super().list_commands(ctx) if n not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            command = _load(cmd_name, self.rich_markup_mode)
            self.commands[cmd_name] = command
        return command


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
