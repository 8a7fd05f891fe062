"""``diagnostics``: one zip an operator can attach to a ticket.

It holds the doctor's report (without the checkpoint: gathering changes nothing), queue
metrics, db-stats, the most recent audit events, the tails of the given log files,
configuration (Garrison and OpenTelemetry environment variables, an optional config file,
store defaults, database PRAGMAs) with secrets redacted, and the versions of Python, SQLite,
Garrison and its dependencies, and the platform. A part that cannot be gathered (a corrupt
database, a missing log) holds the error instead; the bundle is still written.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sqlite3
import sys
import tomllib
import zipfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec

from runtime._errors import ValidationFailed
from runtime.ops._backup import garrison_version, iso, stamp
from runtime.ops._connect import connection, queues
from runtime.ops._doctor import DoctorConfig, diagnose
from runtime.ops._stats import db_stats
from runtime.store import StoreConfig
from runtime.store import _queries as q

REDACTED = "[redacted]"
LOG_TAIL_BYTES = 1024 * 1024
ENV_PREFIXES = ("GARRISON_", "OTEL_")
_SECRET_NAME = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|private|credential|auth|cookie|session|headers?",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):[^@/\s]+@", re.I)
_SECRET_TEXT = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (
        re.compile(
            r"(?i)\b([\w.-]*(?:password|passwd|secret|token|api[_-]?key|authorization)[\w.-]*)"
            r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
        ),
        r"\1\2" + REDACTED,
    ),
]


class DiagnosticsResult(msgspec.Struct, frozen=True):
    """A bundle written: where, what it holds, and the doctor's verdict."""

    path: str
    files: list[str]
    doctor_status: str | None
    errors: dict[str, str]


def redact_text(text: str) -> str:
    """``text`` with credentials in URLs, bearer tokens and ``secret=...`` values hidden."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, key: str = "") -> Any:
    """A copy of a configuration value with secrets hidden: values under secret-sounding
    keys (password, token, key, auth, headers...) entirely, credentials inside strings."""
    if key and _SECRET_NAME.search(key) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _environment(environ: Mapping[str, str]) -> dict[str, Any]:
    picked = {k: v for k, v in sorted(environ.items()) if k.startswith(ENV_PREFIXES)}
    redacted: dict[str, Any] = redact(picked)
    return redacted


def _config_file(path: Path) -> Any:
    raw = path.read_bytes()
    if path.suffix == ".toml":
        return redact(tomllib.loads(raw.decode()))
    if path.suffix == ".json":
        return redact(json.loads(raw))
    return redact_text(raw.decode(errors="replace"))


def versions() -> dict[str, Any]:
    """Python, SQLite, Garrison and the installed versions of Garrison's dependencies."""
    deps: dict[str, str] = {}
    for requirement in metadata.requires("garrison") or []:
        match = re.match(r"[A-Za-z0-9_.-]+", requirement)
        if match is None:  # pragma: no cover - requirements always start with a name
            continue
        with suppress(metadata.PackageNotFoundError):
            deps[match.group(0)] = metadata.version(match.group(0))
    return {
        "python": sys.version,
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "garrison": garrison_version(),
        "dependencies": dict(sorted(deps.items())),
    }


def platform_info(db: Path) -> dict[str, Any]:
    """The host: OS, machine, CPUs, free disk where the database is."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "node": platform.node(),
        "cpu_count": os.cpu_count(),
        "executable": sys.executable,
    }
    with suppress(OSError):
        usage = shutil.disk_usage(db.parent if db.parent.is_dir() else Path("."))
        info["disk"] = {"total": usage.total, "used": usage.used, "free": usage.free}
    return info


def _metrics(db: Path, now: float, since_s: float) -> dict[str, Any]:
    with connection(db) as conn:
        return {
            queue: msgspec.to_builtins(q.queue_metrics(conn, queue, now, since_s))
            for queue in queues(conn)
        }


def _events(db: Path, limit: int) -> list[dict[str, Any]]:
    with connection(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [{**dict(r), "at_iso": iso(float(r["at"]))} for r in reversed(rows)]


def _pragmas(db: Path) -> dict[str, Any]:
    names = ("journal_mode", "page_size", "user_version", "auto_vacuum", "encoding")
    with connection(db) as conn:
        return {n: conn.execute(f"PRAGMA {n}").fetchone()[0] for n in names}


def default_bundle_name(now: float) -> Path:
    """``garrison-diagnostics-YYYYMMDDTHHMMSSZ.zip`` in the current folder."""
    return Path(f"garrison-diagnostics-{stamp(now)}.zip")


def build_bundle(
    db: Path,
    out: Path,
    *,
    now: float,
    log_files: Sequence[Path] = (),
    config_file: Path | None = None,
    events_limit: int = 1000,
    since_s: float = 3600.0,
    environ: Mapping[str, str] | None = None,
    doctor: DoctorConfig | None = None,
) -> DiagnosticsResult:
    """Write the diagnostics zip for ``db`` to ``out`` (mode 0600).

    Raises:
        ValidationFailed: ``out``'s folder does not exist, or ``out`` is a folder.
    """
    if out.is_dir():
        raise ValidationFailed(f"{out} is a folder; give a file name ending in .zip", field="out")
    if not out.absolute().parent.is_dir():
        raise ValidationFailed(f"folder {out.absolute().parent} does not exist", field="out")
    env = os.environ if environ is None else environ
    parts: dict[str, bytes] = {}
    errors: dict[str, str] = {}
    status: list[str] = []

    def gather(name: str, fn: Callable[[], Any]) -> None:
        try:
            value = fn()
        except Exception as exc:  # every part is best effort: the bundle is for broken systems
            errors[name] = f"{type(exc).__name__}: {exc}"
            value = {"error": errors[name]}
        if name.endswith(".jsonl"):
            parts[name] = b"".join(msgspec.json.encode(v) + b"\n" for v in value)
        else:
            parts[name] = msgspec.json.format(msgspec.json.encode(value)) + b"\n"

    def run_doctor() -> Any:
        config = msgspec.structs.replace(doctor or DoctorConfig(), checkpoint=False)
        report = diagnose(db, config, now=now)
        status.append(report.status.value)
        return report

    gather("doctor.json", run_doctor)
    gather("metrics.json", lambda: _metrics(db, now, since_s))
    gather("db-stats.json", lambda: db_stats(db))
    gather("events.jsonl", lambda: _events(db, events_limit))
    gather(
        "config.json",
        lambda: {
            "environment": _environment(env),
            "config_file": None if config_file is None else _config_file(config_file),
            "store_defaults": msgspec.to_builtins(StoreConfig()),
            "database": _safe(lambda: _pragmas(db)),
        },
    )
    gather("versions.json", versions)
    gather("platform.json", lambda: platform_info(db))
    for index, log in enumerate(log_files):
        name = f"logs/{index}-{log.name}"
        try:
            parts[name] = redact_text(_tail(log)).encode()
        except OSError as exc:
            errors[name] = f"cannot read {log}: {exc.strerror}"
    summary = {
        "created": iso(now),
        "database": os.fspath(db),
        "garrison": garrison_version(),
        "files": sorted(parts),
        "errors": errors,
    }
    parts["manifest.json"] = msgspec.json.format(msgspec.json.encode(summary)) + b"\n"
    partial = out.with_name(f".{out.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in sorted(parts.items()):
            bundle.writestr(name, data)
    os.replace(partial, out)
    return DiagnosticsResult(
        path=os.fspath(out),
        files=sorted(parts),
        doctor_status=status[0] if status else None,
        errors=errors,
    )


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _tail(path: Path, size: int = LOG_TAIL_BYTES) -> str:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - size))
        return fh.read().decode(errors="replace")
