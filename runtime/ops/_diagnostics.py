"""``diagnostics``: one zip an operator can attach to a ticket.

It holds the doctor's report (without the checkpoint: gathering changes nothing), queue
metrics, db-stats, the most recent audit events, the tails of the given log files,
configuration (Garrison and OpenTelemetry environment variables, an optional config file,
store defaults, database PRAGMAs) with secrets redacted, and the versions of Python, SQLite,
Garrison and its dependencies, and the platform. A part that cannot be gathered (a corrupt
database, a missing log) holds the error instead; the bundle is still written.
"""

from __future__ import annotations

import functools
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
from runtime._files import atomic_private_file
from runtime.ops._backup import garrison_version, iso, stamp
from runtime.ops._connect import connection, queues
from runtime.ops._doctor import DoctorConfig, diagnose
from runtime.ops._stats import db_stats
from runtime.store import StoreConfig
from runtime.store.sqlite import queue_metrics

REDACTED = "[redacted]"
LOG_TAIL_BYTES = 1024 * 1024
ENV_PREFIXES = ("GARRISON_", "OTEL_")
# Names whose values are secrets: a key, a variable or a ``name=value`` in text matching one
# of these is hidden whole. Broad on purpose: a redacted harmless value costs a question on
# a ticket, a leaked credential costs a rotation.
SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "cookie",
    "credential",
    "private",
    "session",
    "signature",
    "headers",
    "dsn",
)
# Header-like names whose value runs to the end of the line ("Cookie: a=1; b=2",
# "Authorization: Digest username=..., response=...").
_LINE_WORDS = ("authorization", "cookie", "headers")
REDACT_ENV = "GARRISON_REDACT"

_URL_USERINFO = re.compile(
    # A scheme starts where a run of scheme characters starts (not at every \b inside
    # "a.b.c..."), so a long dotted string costs linear time, not quadratic.
    r"(?<![a-z0-9+.-])(?P<scheme>[a-z][a-z0-9+.-]*+://)"
    r"(?P<user>[^:/@\s\"']*)(?P<password>:[^@/\s\"']*)?@",
    re.IGNORECASE,
)
_AUTH_SCHEME = re.compile(
    r"\b(bearer|basic|digest|token|negotiate|apikey)(\s+)[A-Za-z0-9._~+/=:-]+", re.IGNORECASE
)
_PEM = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY[A-Z0-9 ]*)-----.*?(?:-----END \1-----|\Z)", re.DOTALL
)


class DiagnosticsResult(msgspec.Struct, frozen=True):
    """A bundle written: where, what it holds, and the doctor's verdict."""

    path: str
    files: list[str]
    doctor_status: str | None
    errors: dict[str, str]


def _words(extra: Sequence[str]) -> tuple[str, ...]:
    return SECRET_WORDS + tuple(w.strip().lower() for w in extra if w.strip())


def redaction_names(environ: Mapping[str, str], names: Sequence[str] = ()) -> tuple[str, ...]:
    """The operator's own secret names: ``names`` plus ``$GARRISON_REDACT`` (comma- or
    space-separated), matched case-insensitively anywhere in a key or variable name."""
    from_env = re.split(r"[,\s]+", environ.get(REDACT_ENV, ""))
    return tuple(n for n in (*names, *from_env) if n.strip())


def _is_secret_name(name: str, words: Sequence[str]) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in words)


@functools.lru_cache(maxsize=32)
def _text_patterns(words: tuple[str, ...]) -> list[tuple[re.Pattern[str], str]]:
    # A name is matched from its first character only, checked by a lookahead, then taken
    # whole (possessive): no backtracking inside long runs of word characters, so a
    # megabyte of base64 in a log line is scanned in linear time.
    def name(alternatives: str) -> str:
        return (
            rf"(?<![\w.-])(?=[\w.-]*?(?:{alternatives}))[\w.-]++"
            r"(?<!Error)(?<!Exception)(?<!Warning)"  # "KeyError: 'x'" names no secret
        )

    secret = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
    lines = "|".join(_LINE_WORDS)
    quote = r"(?:\\?[\"'])?"  # a name may be quoted, or quoted inside a JSON string
    quoted = r"\\\"(?:[^\"\\\n]|\\[^\"\n])*\\\"|\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'"
    return [
        # "Cookie: a=1; b=2" — the value is the rest of the line (or of the quoted string)
        (
            re.compile(
                rf"(?i)({quote}{name(lines)}{quote}\s*[=:]\s*)"
                rf"(?!\[redacted\])({quoted}|[^\n\"'\\]+)"
            ),
            r"\1" + REDACTED,
        ),
        # password=hunter2, "token": "abc", api_key: 'x y'
        (
            re.compile(
                rf"(?i)({quote}{name(secret)}{quote}\s*[=:]\s*)"
                rf"(?!\[redacted\])({quoted}|[^\s,;&\"'\\)\]}}]+)"
            ),
            r"\1" + REDACTED,
        ),
    ]


def redact_text(text: str, names: Sequence[str] = ()) -> str:
    """``text`` with secrets hidden: private-key (PEM) blocks, credentials in URLs,
    ``Bearer``/``Basic``... tokens, whole header values of ``Authorization``/``Cookie``
    lines, and the value of every ``name=value`` or ``name: value`` whose name contains a
    secret word (:data:`SECRET_WORDS`, or one of ``names``)."""
    text = _PEM.sub(lambda m: f"-----BEGIN {m[1]}-----{REDACTED}-----END {m[1]}-----", text)
    text = _URL_USERINFO.sub(_hide_userinfo, text)
    text = _AUTH_SCHEME.sub(r"\1\2" + REDACTED, text)
    for pattern, replacement in _text_patterns(_words(names)):
        text = pattern.sub(replacement, text)
    return text


def _hide_userinfo(match: re.Match[str]) -> str:
    if match["password"] is not None:  # user:password@ keeps the user, who is not a secret
        return f"{match['scheme']}{match['user']}:{REDACTED}@"
    if not match["user"]:
        return match[0]
    return f"{match['scheme']}{REDACTED}@"  # a lone userinfo is often a token


def redact(value: Any, key: str = "", names: Sequence[str] = ()) -> Any:
    """A copy of a configuration value with secrets hidden: values under secret-sounding
    keys (password, token, key, auth, cookie, private, headers... and ``names``)
    entirely, and secrets inside every string (see :func:`redact_text`)."""
    words = _words(names)
    if key and _is_secret_name(key, words) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k), names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, "", names) for v in value]
    if isinstance(value, str):
        return redact_text(value, names)
    return value


def scrub(value: Any, names: Sequence[str] = ()) -> Any:
    """A copy of a record with secrets inside its strings hidden (see :func:`redact_text`);
    keys are not taken as secret names (an audit row's ``key`` is an item's key)."""
    if isinstance(value, Mapping):
        return {str(k): scrub(v, names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, names) for v in value]
    if isinstance(value, str):
        return redact_text(value, names)
    return value


def _environment(environ: Mapping[str, str], names: Sequence[str]) -> dict[str, Any]:
    picked = {k: v for k, v in sorted(environ.items()) if k.startswith(ENV_PREFIXES)}
    redacted: dict[str, Any] = redact(picked, names=names)
    return redacted


def _config_file(path: Path, names: Sequence[str]) -> Any:
    raw = path.read_bytes()
    if path.suffix == ".toml":
        return redact(tomllib.loads(raw.decode()), names=names)
    if path.suffix == ".json":
        return redact(json.loads(raw), names=names)
    return redact_text(raw.decode(errors="replace"), names)


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
            queue: msgspec.to_builtins(queue_metrics(conn, queue, now, since_s))
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
    redact_names: Sequence[str] = (),
) -> DiagnosticsResult:
    """Write the diagnostics zip for ``db`` to ``out`` (mode 0600), secrets redacted.

    Redaction is not optional: every string in every part goes through
    :func:`redact_text`, configuration values under secret-sounding names through
    :func:`redact`; ``redact_names`` and ``$GARRISON_REDACT`` add the operator's own names.
    The zip is written to a new file with an unpredictable name next to ``out`` and renamed
    over it, so a file or link planted there is never written through.

    Raises:
        ValidationFailed: ``out``'s folder does not exist, or ``out`` is a folder.
        OSError: the zip cannot be written (the folder is not writable, the disk is full);
            nothing is left behind.
    """
    if out.is_dir():
        raise ValidationFailed(f"{out} is a folder; give a file name ending in .zip", field="out")
    if not out.absolute().parent.is_dir():
        raise ValidationFailed(f"folder {out.absolute().parent} does not exist", field="out")
    env = os.environ if environ is None else environ
    names = redaction_names(env, redact_names)
    parts: dict[str, bytes] = {}
    errors: dict[str, str] = {}
    status: list[str] = []

    def gather(name: str, fn: Callable[[], Any]) -> None:
        try:
            value = fn()
        except Exception as exc:  # every part is best effort: the bundle is for broken systems
            errors[name] = redact_text(f"{type(exc).__name__}: {exc}", names)
            value = {"error": errors[name]}
        value = scrub(msgspec.to_builtins(value), names)
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
            "environment": _environment(env, names),
            "config_file": None if config_file is None else _config_file(config_file, names),
            "store_defaults": msgspec.to_builtins(StoreConfig()),
            "database": _safe(lambda: _pragmas(db)),
        },
    )
    gather("versions.json", versions)
    gather("platform.json", lambda: platform_info(db))
    for index, log in enumerate(log_files):
        name = f"logs/{index}-{log.name}"
        try:
            parts[name] = redact_text(_tail(log), names).encode()
        except OSError as exc:
            errors[name] = redact_text(f"cannot read {log}: {exc.strerror}", names)
    summary = {
        "created": iso(now),
        "database": os.fspath(db),
        "garrison": garrison_version(),
        "files": sorted(parts),
        "errors": errors,
    }
    parts["manifest.json"] = msgspec.json.format(msgspec.json.encode(scrub(summary, names))) + b"\n"
    with atomic_private_file(out) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in sorted(parts.items()):
            bundle.writestr(name, data)
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
