"""The public API, pinned: what each package names in ``__all__``.

A change to a package's ``__all__`` is a change to what users may import, so it is made on
purpose: this listing is updated in the same commit. ``python tests/test_exports.py``
prints the listing as the code has it now, to paste over ``EXPORTS`` below.

Every exported name must also exist, and a class or function exported must say what it
is (its own docstring, not one inherited).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXPORTS: dict[str, list[str]] = {
    "policies": [
        "Backoff",
        "FailureKind",
        "GarrisonError",
        "PressureAction",
        "PressureLevel",
        "PressurePolicy",
        "RestartPolicy",
        "RetentionCutoffs",
        "RetentionPolicy",
        "RetryDecision",
        "RetryPolicy",
        "TokenBucket",
        "ValidationFailed",
        "check_bounds",
        "shed_victim",
    ],
    "supervisors": [
        "AutoShutdown",
        "ChildContext",
        "ChildCounts",
        "ChildDown",
        "ChildExited",
        "ChildHung",
        "ChildInfo",
        "ChildMonitor",
        "ChildNotFound",
        "ChildRunning",
        "ChildSpec",
        "ChildStart",
        "ChildStartError",
        "ChildState",
        "DownReason",
        "DuplicateChild",
        "DynamicSupervisor",
        "Failure",
        "LoopBlockage",
        "LoopWatch",
        "LoopWatchConfig",
        "LoopWatchStatistics",
        "PartitionKey",
        "PartitionStatistics",
        "PartitionSupervisor",
        "Restart",
        "RestartReason",
        "RestartRecord",
        "Strategy",
        "Supervisor",
        "SupervisorError",
        "SupervisorEscalation",
        "SupervisorNotRunning",
        "SupervisorStatistics",
        "TaskHandle",
        "TaskStopped",
        "TaskSupervisor",
        "TaskSupervisorStatistics",
        "TooManyChildren",
        "abandoned_children",
        "current_child",
        "heartbeat",
        "partition_for",
        "shutdown_grace",
    ],
    "runtime": [
        "ChecksumMismatch",
        "DeadLetter",
        "DeadReason",
        "Failure",
        "InvalidTransition",
        "ItemNotFound",
        "ItemState",
        "NewItem",
        "NotADatabase",
        "PayloadTooLarge",
        "PressureRejected",
        "ReplayRefused",
        "SQLiteStore",
        "SchemaTooNew",
        "StaleLease",
        "Store",
        "StoreBusy",
        "StoreConfig",
        "StoreFull",
        "StoreUnavailable",
        "Synchronous",
        "ValidationFailed",
        "WorkItem",
        "open_store",
    ],
    "runtime.actors": [
        "Actor",
        "ActorContext",
        "ActorError",
        "ActorGone",
        "ActorStatistics",
        "Behaviour",
        "CallFailed",
        "CallTimeout",
        "CallingSelf",
        "CheckpointStore",
        "Directive",
        "Escalated",
        "HandlerTimeout",
        "Mailbox",
        "MailboxStatistics",
        "NameTaken",
        "NotRegistered",
        "PressureTransition",
        "Registry",
        "RegistryFull",
        "ShedHook",
        "StopReason",
        "TooManyWatchers",
        "TransitionHook",
        "Watch",
        "from_handler",
    ],
    "runtime.cli": [
        "app",
        "main",
    ],
    "runtime.ops": [
        "BackupInfo",
        "BackupManifest",
        "BackupRefused",
        "BackupResult",
        "BackupStatus",
        "CheckResult",
        "DEFAULT_RETENTION_DAYS",
        "DatabaseInUse",
        "DbStats",
        "DiagnosticsResult",
        "DoctorConfig",
        "DoctorReport",
        "Finding",
        "HealthConfig",
        "HealthReport",
        "HealthStatus",
        "MB",
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
    ],
    "runtime.pipeline": [
        "ContextHandler",
        "Handler",
        "HandlerContext",
        "ItemHandler",
        "KeyOrder",
        "Outcome",
        "Pipeline",
        "PipelineConfig",
        "PipelineStatistics",
        "PressureGauge",
        "SettledHook",
        "Sink",
        "SinkFailed",
        "TerminalError",
        "ThreadPool",
        "ThreadPoolStatistics",
        "adapt_handler",
        "default_owner",
        "default_worker_restarts",
        "effect_key",
        "failure_from",
        "is_async",
        "load_callable",
        "load_handler",
        "origin_id",
        "takes_context",
    ],
    "runtime.replay": [
        "ReplayConfig",
        "ReplayOutcome",
        "ReplayReport",
        "ReplaySelection",
        "ReplayService",
        "replay_config",
        "select",
    ],
    "runtime.store": [
        "AuditEvent",
        "Consumer",
        "DeadLetter",
        "DeadLetterAdmin",
        "DeadReason",
        "EnqueueResult",
        "FailOutcome",
        "Failure",
        "ItemState",
        "Ledger",
        "MEMORY_URL",
        "MemoryDatabase",
        "MemoryStatistics",
        "MemoryStore",
        "NewItem",
        "Producer",
        "PurgeResult",
        "QueueMetrics",
        "QueueStore",
        "SCHEMA_VERSION",
        "SQLiteStore",
        "Store",
        "StoreConfig",
        "StoreStatistics",
        "Synchronous",
        "WorkItem",
        "WriterStatistics",
        "open_store",
        "payload_digest",
        "replay_refusal",
        "validate_new_item",
    ],
    "runtime.telemetry": [
        "CapturedTelemetry",
        "DEAD_LETTER_CONTEXT_KEY",
        "DEAD_LETTER_SPAN",
        "DepthSample",
        "ESCALATION_SPAN",
        "Exporter",
        "Instruments",
        "JsonFormatter",
        "KeepRequiredSampler",
        "LEVELS",
        "LeasedItem",
        "LogConfig",
        "MAX_SETTLE_LINKS",
        "OutgoingItem",
        "PRESSURE_SPAN",
        "PROGRESS_PREFIX",
        "Progress",
        "ProgressSnapshot",
        "REPLAY_SPAN",
        "REQUIRED_SPANS",
        "RESTART_SPAN",
        "ReplayRecorder",
        "TelemetryConfig",
        "TelemetryHandle",
        "capture_telemetry",
        "configure_logging",
        "configure_telemetry",
        "current_instruments",
        "dead_letter_written",
        "enqueue_span",
        "extract_context",
        "format_progress",
        "install_instruments",
        "item_rejected",
        "items_enqueued",
        "items_shed",
        "lease_contended",
        "parse_progress",
        "pressure_level_gauge",
        "pressure_level_now",
        "pressure_transition",
        "process_span",
        "queue_depth",
        "register_depth_source",
        "replay_span",
        "reset_logging",
        "run_progress",
        "settle_links",
        "settle_span",
        "settled",
        "use_instruments",
    ],
    "runtime.tui": [
        "Detail",
        "History",
        "Pressure",
        "Snapshot",
        "SortKey",
        "TopApp",
        "TopConfig",
        "TopReader",
        "TopicRow",
    ],
    "runtime.worker": [
        "Graceful",
        "Handler",
        "TerminalError",
        "Worker",
        "WorkerConfig",
        "WorkerStatistics",
        "load_callable",
        "load_handler",
        "run_until_signalled",
        "worker_config",
    ],
    "runtime.store.sqlite": [
        "EXPECTED_INDEXES",
        "EXPECTED_TABLES",
        "MIGRATIONS",
        "SCHEMA_VERSION",
        "SQLITE_HEADER",
        "SQLiteBackend",
        "check_path",
        "exclusive_use",
        "lock_path",
        "queue_metrics",
        "shared_use",
        "translate",
    ],
}


def public_packages() -> list[str]:
    """The top-level packages, every subpackage of ``runtime``, and the public modules
    inside those (``runtime.store.sqlite``)."""
    runtime = importlib.import_module("runtime")
    subpackages = sorted(
        f"runtime.{info.name}"
        for info in pkgutil.iter_modules(runtime.__path__)
        if info.ispkg and not info.name.startswith("_")
    )
    modules = sorted(
        f"{package}.{info.name}"
        for package in subpackages
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__)
        if not info.name.startswith("_")
    )
    return ["policies", "supervisors", "runtime", *subpackages, *modules]


def exported(package: str) -> list[str]:
    module = importlib.import_module(package)
    names = getattr(module, "__all__", None)
    assert names is not None, f"{package} has no __all__; its __init__ must name its API"
    return list(names)


def listing() -> str:
    lines = ["EXPORTS: dict[str, list[str]] = {"]
    for package in public_packages():
        lines.append(f"    {package!r}: [")
        lines.extend(f"        {name!r}," for name in sorted(exported(package)))
        lines.append("    ],")
    lines.append("}")
    return "\n".join(lines).replace("'", '"')


def test_every_package_is_pinned() -> None:
    assert sorted(public_packages()) == sorted(EXPORTS), (
        "the packages differ from the pinned listing; run `python tests/test_exports.py` "
        "and paste its output over EXPORTS in tests/test_exports.py"
    )


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_exports_match_the_listing(package: str) -> None:
    names = exported(package)
    assert len(names) == len(set(names)), f"{package}.__all__ names something twice"
    added = sorted(set(names) - set(EXPORTS[package]))
    removed = sorted(set(EXPORTS[package]) - set(names))
    assert not added and not removed, (
        f"{package}.__all__ changed: added {added}, removed {removed}. If that is meant "
        "(a public API change), update EXPORTS in tests/test_exports.py: "
        "`python tests/test_exports.py` prints the listing as the code has it now."
    )


def _own_docstring(obj: object) -> str | None:
    # A class's docstring is not inherited in __dict__; inspect.getdoc would find the
    # base class's and let an undocumented subclass pass.
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        return doc if isinstance(doc, str) else None
    return getattr(obj, "__doc__", None)


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_exported_names_exist_and_are_documented(package: str) -> None:
    module: ModuleType = importlib.import_module(package)
    missing = [name for name in exported(package) if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it does not have: {missing}"
    undocumented = [
        name
        for name in exported(package)
        if (inspect.isclass(obj := getattr(module, name)) or inspect.isroutine(obj))
        and not (_own_docstring(obj) or "").strip()
    ]
    assert not undocumented, f"{package} exports classes or functions without a docstring: " + (
        ", ".join(undocumented)
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(listing())
