"""The operator toolkit: doctor, health, backup and restore, retention, maintenance,
db-stats and diagnostics bundles. Every function here is blocking (SQLite in the calling
thread) except :func:`purge` and :func:`check_health`, which go through a store; the
``garrison`` CLI is their front end."""

from runtime.ops._ages import format_age, parse_age
from runtime.ops._backup import (
    DEFAULT_RETENTION_DAYS,
    BackupInfo,
    BackupManifest,
    BackupResult,
    BackupStatus,
    backup,
    latest_verified,
    list_backups,
    manifest_path,
    prune_backups,
    verify_backup,
)
from runtime.ops._diagnostics import (
    DiagnosticsResult,
    build_bundle,
    default_bundle_name,
    redact,
    redact_text,
)
from runtime.ops._doctor import MB, DoctorConfig, DoctorReport, diagnose, retention_flags
from runtime.ops._errors import BackupRefused, DatabaseInUse
from runtime.ops._findings import Finding, Severity, worst
from runtime.ops._health import (
    CheckResult,
    HealthConfig,
    HealthReport,
    HealthStatus,
    check_health,
    memory_available,
)
from runtime.ops._maintenance import MaintenanceResult, maintain
from runtime.ops._restore import RestoreResult, holders, restore
from runtime.ops._retention import PurgeReport, purge
from runtime.ops._stats import DbStats, db_stats

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "MB",
    "BackupInfo",
    "BackupManifest",
    "BackupRefused",
    "BackupResult",
    "BackupStatus",
    "CheckResult",
    "DatabaseInUse",
    "DbStats",
    "DiagnosticsResult",
    "DoctorConfig",
    "DoctorReport",
    "Finding",
    "HealthConfig",
    "HealthReport",
    "HealthStatus",
    "MaintenanceResult",
    "PurgeReport",
    "RestoreResult",
    "Severity",
    "backup",
    "build_bundle",
    "check_health",
    "db_stats",
    "default_bundle_name",
    "diagnose",
    "format_age",
    "holders",
    "latest_verified",
    "list_backups",
    "maintain",
    "manifest_path",
    "memory_available",
    "parse_age",
    "prune_backups",
    "purge",
    "redact",
    "redact_text",
    "restore",
    "retention_flags",
    "verify_backup",
    "worst",
]
