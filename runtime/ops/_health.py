"""Health checks of a Garrison database and its host: what ``garrison health`` reports.

Each check gives ``ok``, ``warn`` or ``critical``; the report's status is the worst of them
(exit codes 0, 1, 2). An operations concern, not telemetry's: it reads the store, and the
store reports through telemetry.
"""

from __future__ import annotations

import enum
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec

from policies import check_bounds
from runtime._errors import ValidationFailed
from runtime.ops._doctor import MB
from runtime.store import Store

__all__ = [
    "CheckResult",
    "HealthConfig",
    "HealthReport",
    "HealthStatus",
    "check_health",
    "host_checks",
    "memory_available",
]

_CHECKPOINT = "garrison.health"


class HealthStatus(enum.IntEnum):
    """A check's verdict; the value is the command's exit code."""

    OK = 0
    WARN = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        """``ok``, ``warn`` or ``critical``."""
        return self.name.lower()


class HealthConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds of the health checks.

    Attributes:
        disk_warn_bytes: warn when the database's file system has less free space (>= 0).
        disk_critical_bytes: critical below this (>= 0, at most ``disk_warn_bytes``).
        memory_warn_bytes: warn when the host has less memory available (>= 0).
        alert_failure_threshold: warn when retries + dead letters in the window exceed it
            (>= 0).
        metrics_window_hours: the window of the failure count (> 0).
        stale_after_s: warn when a topic's last success is older than this (> 0).

    Raises:
        ValidationFailed: a value outside its bounds (``field`` names it).
    """

    disk_warn_bytes: Annotated[int, msgspec.Meta(ge=0)] = 1024 * MB
    disk_critical_bytes: Annotated[int, msgspec.Meta(ge=0)] = 512 * MB
    memory_warn_bytes: Annotated[int, msgspec.Meta(ge=0)] = 256 * MB
    alert_failure_threshold: Annotated[int, msgspec.Meta(ge=0)] = 5
    metrics_window_hours: Annotated[float, msgspec.Meta(gt=0)] = 24.0
    stale_after_s: Annotated[float, msgspec.Meta(gt=0)] = 24 * 3600.0

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.disk_critical_bytes > self.disk_warn_bytes:
            raise ValidationFailed(
                "the critical disk threshold must not exceed the warning one",
                field="disk_critical_bytes",
            )


class CheckResult(msgspec.Struct, frozen=True):
    """One check: its name, verdict, a one-line explanation and figures."""

    name: str
    status: str
    message: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class HealthReport(msgspec.Struct, frozen=True):
    """Every check, and the worst verdict."""

    status: str
    checks: list[CheckResult]

    @property
    def exit_code(self) -> int:
        """0 ok, 1 warn, 2 critical."""
        return HealthStatus[self.status.upper()].value


def _result(name: str, status: HealthStatus, message: str, **data: Any) -> CheckResult:
    return CheckResult(name=name, status=status.label, message=message, data=data)


def memory_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of memory available to new work (Linux ``MemAvailable``), or None if unknown."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _disk_check(path: Path, config: HealthConfig, usage: Callable[[str], Any]) -> CheckResult:
    target = path if path.exists() else path.parent
    try:
        free = int(usage(os.fspath(target or Path("."))).free)
    except OSError as exc:
        return _result("disk", HealthStatus.CRITICAL, f"cannot read free space: {exc}")
    status = (
        HealthStatus.CRITICAL
        if free < config.disk_critical_bytes
        else HealthStatus.WARN
        if free < config.disk_warn_bytes
        else HealthStatus.OK
    )
    return _result(
        "disk",
        status,
        f"{free / MB:,.0f} MB free",
        free_bytes=free,
        warn_bytes=config.disk_warn_bytes,
        critical_bytes=config.disk_critical_bytes,
    )


def host_checks(
    path: Path,
    config: HealthConfig,
    *,
    disk_usage: Callable[[str], Any] = shutil.disk_usage,
    memory: Callable[[], int | None] = memory_available,
) -> list[CheckResult]:
    """The checks that need no database: disk space where ``path`` lives, and memory."""
    checks = [_disk_check(path, config, disk_usage)]
    available = memory()
    if available is None:
        checks.append(_result("memory", HealthStatus.OK, "memory available is unknown"))
    else:
        status = HealthStatus.WARN if available < config.memory_warn_bytes else HealthStatus.OK
        checks.append(
            _result(
                "memory",
                status,
                f"{available / MB:,.0f} MB available",
                available_bytes=available,
                warn_bytes=config.memory_warn_bytes,
            )
        )
    return checks


async def _database_checks(store: Store, config: HealthConfig) -> list[CheckResult]:
    checks: list[CheckResult] = []
    now = store.now()
    stamp = repr(now).encode()
    await store.save_checkpoint(_CHECKPOINT, stamp)
    if await store.load_checkpoint(_CHECKPOINT) != stamp:
        return [_result("database", HealthStatus.CRITICAL, "wrote a row but read back another")]
    checks.append(_result("database", HealthStatus.OK, "read and write succeeded"))
    window_s = config.metrics_window_hours * 3600.0
    figures = await store.metrics(window_s)
    stale = {
        topic: round(now - at, 3)
        for topic, at in figures.last_success.items()
        if now - at > config.stale_after_s
    }
    checks.append(
        _result(
            "last_success",
            HealthStatus.WARN if stale else HealthStatus.OK,
            f"{len(stale)} topic(s) without a success for over {config.stale_after_s:g} s"
            if stale
            else f"{len(figures.last_success)} topic(s), none stale",
            topics={
                topic: {"last_success_at": at, "staleness_s": round(now - at, 3)}
                for topic, at in sorted(figures.last_success.items())
            },
            stale_after_s=config.stale_after_s,
        )
    )
    failures = figures.retries + figures.dead_letters
    over = failures > config.alert_failure_threshold
    checks.append(
        _result(
            "failures",
            HealthStatus.WARN if over else HealthStatus.OK,
            f"{failures} failure(s) in the last {config.metrics_window_hours:g} h "
            f"(threshold {config.alert_failure_threshold})",
            failures=failures,
            retries=figures.retries,
            dead_letters=figures.dead_letters,
            alert_failure_threshold=config.alert_failure_threshold,
            metrics_window_hours=config.metrics_window_hours,
        )
    )
    return checks


async def check_health(
    store: Store | None,
    path: Path,
    config: HealthConfig | None = None,
    *,
    store_error: BaseException | None = None,
    disk_usage: Callable[[str], Any] = shutil.disk_usage,
    memory: Callable[[], int | None] = memory_available,
) -> HealthReport:
    """Run every check. ``store`` is None when the database could not be opened (then
    ``store_error`` says why and the database check is critical).

    The database check writes one checkpoint row (``garrison.health``) and reads it back.
    A database error during the checks is reported as a critical check, not raised;
    cancellation is not an error and propagates.
    """
    config = config or HealthConfig()
    checks: list[CheckResult] = []
    if store is None:
        reason = str(store_error) if store_error is not None else "not opened"
        checks.append(_result("database", HealthStatus.CRITICAL, f"cannot open: {reason}"))
    else:
        try:
            checks.extend(await _database_checks(store, config))
        except Exception as exc:
            checks.append(
                _result("database", HealthStatus.CRITICAL, f"{type(exc).__name__}: {exc}")
            )
    checks.extend(host_checks(path, config, disk_usage=disk_usage, memory=memory))
    worst = max((HealthStatus[c.status.upper()] for c in checks), default=HealthStatus.OK)
    return HealthReport(status=worst.label, checks=checks)
