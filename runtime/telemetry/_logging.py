"""Structured logs: one JSON object per line (or a human format on a terminal).

Stdlib ``logging`` with a JSON formatter encoded by msgspec; every record carries the
current trace and span ids, and the fields passed in ``extra=`` (topic, item_id, attempt,
correlation_id, ...).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TextIO

import msgspec
from opentelemetry import trace

from policies import check_bounds
from runtime._errors import ValidationFailed
from runtime._files import PrivateRotatingFileHandler, ensure_private_dir

__all__ = ["JsonFormatter", "LogConfig", "configure_logging", "reset_logging"]

LogFormat = Literal["json", "human", "auto"]

# The attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
_HANDLER_NAME: Final = "garrison-telemetry"


class LogConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where and how log lines are written.

    Attributes:
        format: ``json`` (one object per line), ``human``, or ``auto`` (human on a
            terminal, JSON otherwise).
        file: write to this file, rotated by size, instead of stderr.
        max_bytes: rotate the file at this size (at least 1024).
        backup_count: rotated files kept, older ones are deleted (within [0, 1000]).
        level: the lowest level written for Garrison's loggers (a ``logging`` level name).

    Raises:
        ValidationFailed: a value outside its bounds or an unknown level (``field`` names
            it).
    """

    format: LogFormat = "auto"
    file: str | None = None
    max_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 10 * 1024 * 1024
    backup_count: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 5
    level: str = "INFO"

    def __post_init__(self) -> None:
        check_bounds(self)
        if logging.getLevelName(self.level.upper()) not in range(0, 100):
            raise ValidationFailed(f"unknown log level {self.level!r}", field="level")


def _default(value: object) -> object:
    return repr(value)


_ENCODER: Final = msgspec.json.Encoder(enc_hook=_default)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: level, time, event, component, message, the
    current trace_id/span_id, the ``extra=`` fields, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "component": record.name.removeprefix("garrison.") or record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            fields["trace_id"] = format(context.trace_id, "032x")
            fields["span_id"] = format(context.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                fields[key] = value
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(fields).decode()


class _HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(_fields)s")

    def format(self, record: logging.LogRecord) -> str:
        extra = {
            k: v
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_") and v is not None
        }
        record._fields = "".join(f" {k}={v}" for k, v in extra.items())
        return super().format(record)


def configure_logging(config: LogConfig | None = None, *, stream: TextIO | None = None) -> None:
    """Send Garrison's logs (the ``garrison`` logger tree) where ``config`` says.

    Calling it again replaces the handler it installed before; :func:`reset_logging`
    removes it. ``stream`` defaults to ``sys.stderr`` (ignored when ``config.file`` is set).
    Garrison's records then stop propagating to the root logger, so none is written twice.

    Raises:
        OSError: the log file cannot be opened.
    """
    config = config or LogConfig()
    root = logging.getLogger("garrison")
    reset_logging()
    handler: logging.Handler
    if config.file is not None:
        ensure_private_dir(Path(config.file).parent)
        handler = PrivateRotatingFileHandler(
            config.file,
            maxBytes=config.max_bytes,
            backupCount=config.backup_count,
            encoding="utf-8",
        )
        target: TextIO | None = None
    else:
        target = stream or sys.stderr
        handler = logging.StreamHandler(target)
    fmt = config.format
    if fmt == "auto":
        fmt = "human" if target is not None and target.isatty() else "json"
    handler.setFormatter(JsonFormatter() if fmt == "json" else _HumanFormatter())
    handler.set_name(_HANDLER_NAME)
    _saved[:] = [root.level, root.propagate]
    root.addHandler(handler)
    root.setLevel(config.level.upper())
    root.propagate = False


_saved: list[int | bool] = []


def reset_logging() -> None:
    """Remove the handler :func:`configure_logging` installed (closing its file), and
    restore the ``garrison`` logger's level and propagation. Idempotent."""
    root = logging.getLogger("garrison")
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    if _saved:
        level, propagate = _saved
        root.setLevel(int(level))
        root.propagate = bool(propagate)
        _saved.clear()
