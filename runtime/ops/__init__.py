"""The operator toolkit: doctor, backup and restore, retention, maintenance, db-stats and
diagnostics bundles. Every function here is blocking (SQLite in the calling thread) except
:func:`purge`, which goes through a store; the ``garrison`` CLI is their front end."""

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
from runtime.ops._diagnostics import DiagnosticsResult, build_bundle, redact, redact_text
from runtime.ops._doctor import DoctorConfig, DoctorReport, diagnose, retention_flags
from runtime.ops._errors import BackupRefused, DatabaseInUse
from runtime.ops._findings import Finding, Severity, worst
from runtime.ops._maintenance import MaintenanceResult, maintain
from runtime.ops._restore import RestoreResult, holders, restore
from runtime.ops._retention import PurgeReport, purge
from runtime.ops._stats import DbStats, db_stats

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "BackupInfo",
    "BackupManifest",
    "BackupRefused",
    "BackupResult",
    "BackupStatus",
    "DatabaseInUse",
    "DbStats",
    "DiagnosticsResult",
    "DoctorConfig",
    "DoctorReport",
    "Finding",
    "MaintenanceResult",
    "PurgeReport",
    "RestoreResult",
    "Severity",
    "backup",
    "build_bundle",
    "db_stats",
    "diagnose",
    "format_age",
    "holders",
    "latest_verified",
    "list_backups",
    "maintain",
    "manifest_path",
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
