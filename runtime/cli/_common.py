"""What every command shares: the ``--db`` option, typed errors as one-line messages,
and JSON/table output."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import anyio
import msgspec
import typer
from rich.console import Console

from policies import GarrisonError
from runtime._errors import ItemNotFound, ReplayRefused, ValidationFailed

T = TypeVar("T")

EXIT_ERROR = 1
EXIT_BAD_INPUT = 2

DEFAULT_DB = "./garrison.db"

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="SQLite database file (default: $GARRISON_DB or ./garrison.db).",
        show_default=False,
    ),
]
QueueOption = Annotated[str, typer.Option("--queue", help="Queue name within the database.")]
FormatOption = Annotated[
    str, typer.Option("--format", help="Output format: table or json.", case_sensitive=False)
]
BusyTimeoutOption = Annotated[
    float,
    typer.Option(
        "--busy-timeout", help="Seconds to wait for another writer's lock before failing.", min=0
    ),
]


def db_path(db: Path | None) -> Path:
    """The database path from ``--db``, ``$GARRISON_DB`` or the default."""
    if db is not None:
        return db
    return Path(os.environ.get("GARRISON_DB") or DEFAULT_DB)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print a one-line error to stderr and exit with ``code``."""
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    typer.echo(f"garrison: error: {first_line}", err=True)
    raise typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn Garrison's typed errors into one-line messages and exit codes.

    Bad input (validation, unknown ids, refused replays) exits 2; anything else the
    runtime refused (store unavailable, busy, full) exits 1. No traceback is shown.
    """
    try:
        yield
    except (ValidationFailed, ItemNotFound, ReplayRefused) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except GarrisonError as exc:
        fail(str(exc), EXIT_ERROR)
    except msgspec.ValidationError as exc:
        fail(f"invalid input: {exc}", EXIT_BAD_INPUT)


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a command's async body on Trio, with friendly errors."""
    with friendly_errors():
        return anyio.run(fn, backend="trio")


def check_format(fmt: str, allowed: tuple[str, ...] = ("table", "json")) -> str:
    """Validate ``--format``."""
    value = fmt.lower()
    if value not in allowed:
        fail(f"--format must be one of {', '.join(allowed)} (got {fmt!r})", EXIT_BAD_INPUT)
    return value


def print_json(value: Any) -> None:
    """Print one JSON document (msgspec handles structs, enums and bytes)."""
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def iso(ts: float | None) -> str | None:
    """An epoch timestamp as ISO-8601 UTC (None stays None)."""
    if ts is None:
        return None
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="milliseconds")


def console() -> Console:
    """A console for tables: the terminal's width, or wide enough not to wrap in pipes."""
    term = Console()
    return term if term.is_terminal else Console(width=200)
