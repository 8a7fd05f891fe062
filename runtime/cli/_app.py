"""The ``garrison`` command: its sub-commands, registered in one place."""

from __future__ import annotations

import typer

from runtime._errors import ValidationFailed
from runtime.cli import _dlq
from runtime.cli._common import EXIT_BAD_INPUT, fail
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

app = typer.Typer(
    name="garrison",
    help="Garrison: supervised workers over a durable queue.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
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
