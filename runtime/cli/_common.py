"""What every command shares: the ``--db`` option, typed errors as one-line messages,
and JSON/table output."""

from __future__ import annotations

import logging
import math
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
from runtime.time_parse import parse_since
from supervisors import abandoned_children

T = TypeVar("T")

EXIT_ERROR = 1
EXIT_BAD_INPUT = 2

DEFAULT_DB = "./garrison.db"
# Longest duration an option accepts (100 years): past it a window or an age is a typo,
# and float arithmetic on it (now - 1e400 = -inf) would silently select everything.
MAX_DURATION_S = 100 * 366 * 86400.0

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


def _seconds(value: float) -> float:
    # Click's FloatRange lets nan and inf through (every comparison with nan is false).
    if not (math.isfinite(value) and 0 < value <= MAX_DURATION_S):
        raise typer.BadParameter(f"{value} is not a number of seconds above 0")
    return value


BusyTimeoutOption = Annotated[
    float,
    typer.Option(
        "--busy-timeout",
        help="Seconds to wait for another writer's lock before failing.",
        callback=_seconds,
    ),
]


def db_path(db: Path | None) -> Path:
    """The database path from ``--db``, ``$GARRISON_DB`` or the default."""
    if db is not None:
        return db
    return Path(os.environ.get("GARRISON_DB") or DEFAULT_DB)


def one_line(message: str, *, first: bool = False) -> str:
    """``message`` on one line (its lines joined, or only the ``first``), with characters a
    terminal would act on (escapes, undecodable bytes) shown escaped, so that hostile
    input cannot forge or garble what the operator reads."""
    parts = [line.strip() for line in message.strip().splitlines() if line.strip()]
    text = (parts[0] if first else " ".join(parts)) if parts else "unknown error"
    return "".join(
        ch if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF else ascii(ch)[1:-1]
        for ch in text
    )


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print a one-line error to stderr and exit with ``code``."""
    typer.echo(f"garrison: error: {one_line(message, first=True)}", err=True)
    raise typer.Exit(code)


def text_option(value: str | None, option: str) -> str | None:
    """``value`` if it is valid UTF-8 text (or None).

    Python hands undecodable argv bytes over as lone surrogates; they cannot be stored or
    printed, so they are refused here, before anything is opened.

    Raises:
        ValidationFailed: ``value`` holds bytes that are not UTF-8.
    """
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationFailed(
            f"{option} is not valid UTF-8 (byte {exc.start + 1} of the value)",
            field=option.lstrip("-").replace("-", "_"),
        ) from exc
    return value


def duration(text: str, option: str, *, allow_zero: bool = False) -> float:
    """Seconds in a duration option (``90``, ``15m``, ``2h``, ``7d``), at most 100 years.

    Raises:
        ValidationFailed: not a duration, zero (unless ``allow_zero``), or too long.
    """
    seconds = parse_since(text_option(text, option) or "", allow_zero=allow_zero)
    if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
        raise ValidationFailed(
            f"{option} {one_line(text)!s} is longer than 100 years", field=option.lstrip("-")
        )
    return seconds


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn Garrison's typed errors into one-line messages and exit codes.

    Bad input (validation, unknown ids, refused replays, text that is not UTF-8) exits 2;
    anything else the runtime refused (store unavailable, busy, full) exits 1. No
    traceback is shown.
    """
    try:
        yield
    except (ValidationFailed, ItemNotFound, ReplayRefused) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except GarrisonError as exc:
        fail(str(exc), EXIT_ERROR)
    except msgspec.ValidationError as exc:
        fail(f"invalid input: {exc}", EXIT_BAD_INPUT)
    except UnicodeError as exc:
        # Commands check their text options first; this is the net for any they missed
        # (a surrogate reaching sqlite3 or a file name), raised before anything is written.
        fail(f"input is not valid UTF-8 text ({getattr(exc, 'reason', exc)})", EXIT_BAD_INPUT)


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a command's async body on Trio, with friendly errors.

    If a supervisor abandoned a child that would not stop (see ``supervisors``' bounded
    stop), Trio would wait for that task before returning: the command then flushes its
    output and logs and exits at once with its own exit code, saying so on stderr.
    """

    async def body() -> T:
        before = abandoned_children()
        result = await fn()
        abandoned = abandoned_children() - before
        if abandoned:
            code = result if isinstance(result, int) else 0
            print(
                f"garrison: {abandoned} supervised task(s) did not stop by their deadline; "
                "exiting without waiting for them",
                file=sys.stderr,
            )
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return result

    with friendly_errors():
        return anyio.run(body, backend="trio")


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
