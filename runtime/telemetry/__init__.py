"""Telemetry: OpenTelemetry spans and metrics, JSON logs, and ``[progress]`` lines.

Library code (store, worker, pressure, replay, supervisors) calls the helpers below; they
use only ``opentelemetry-api`` and cost next to nothing until an SDK is configured.
Commands and applications set the SDK up with :func:`configure_telemetry`; tests use
:func:`capture_telemetry`.

Required spans: ``garrison.dead_letter.write`` (:func:`dead_letter_written`),
``garrison.pressure.transition`` (:func:`pressure_transition`), ``garrison.replay``
(:func:`replay_span`), ``garrison.supervisor.restart`` (``supervisors``). The SDK set up by
:func:`configure_telemetry` keeps them whatever the sample ratio (:class:`KeepRequiredSampler`).
"""

import importlib
from typing import TYPE_CHECKING, Any

from runtime.telemetry._instruments import (
    DEAD_LETTER_CONTEXT_KEY,
    DEAD_LETTER_SPAN,
    LEVELS,
    PRESSURE_SPAN,
    REPLAY_SPAN,
    RESTART_SPAN,
    Instruments,
    ReplayRecorder,
    current_instruments,
    dead_letter_written,
    enqueue_span,
    extract_context,
    install_instruments,
    item_rejected,
    items_enqueued,
    items_shed,
    lease_contended,
    pressure_level_gauge,
    pressure_transition,
    process_span,
    queue_depth,
    replay_span,
    settle_span,
    settled,
    use_instruments,
)
from runtime.telemetry._logging import JsonFormatter, LogConfig, configure_logging, reset_logging
from runtime.telemetry._progress import (
    PROGRESS_PREFIX,
    Progress,
    ProgressSnapshot,
    format_progress,
    parse_progress,
    pressure_level_now,
    run_progress,
)

if TYPE_CHECKING:
    from runtime.telemetry._health import (
        CheckResult,
        HealthConfig,
        HealthReport,
        HealthStatus,
        check_health,
    )
    from runtime.telemetry._sampling import REQUIRED_SPANS, KeepRequiredSampler
    from runtime.telemetry._setup import (
        Exporter,
        TelemetryConfig,
        TelemetryHandle,
        configure_telemetry,
    )
    from runtime.telemetry._testing import CapturedTelemetry, capture_telemetry

# The SDK-side names (and the health checks, which import the store) load on first use,
# so library code importing the helpers above never imports the OpenTelemetry SDK.
_LAZY = {
    "CheckResult": "runtime.telemetry._health",
    "HealthConfig": "runtime.telemetry._health",
    "HealthReport": "runtime.telemetry._health",
    "HealthStatus": "runtime.telemetry._health",
    "check_health": "runtime.telemetry._health",
    "KeepRequiredSampler": "runtime.telemetry._sampling",
    "REQUIRED_SPANS": "runtime.telemetry._sampling",
    "Exporter": "runtime.telemetry._setup",
    "TelemetryConfig": "runtime.telemetry._setup",
    "TelemetryHandle": "runtime.telemetry._setup",
    "configure_telemetry": "runtime.telemetry._setup",
    "CapturedTelemetry": "runtime.telemetry._testing",
    "capture_telemetry": "runtime.telemetry._testing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime.telemetry' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEAD_LETTER_CONTEXT_KEY",
    "DEAD_LETTER_SPAN",
    "LEVELS",
    "PRESSURE_SPAN",
    "PROGRESS_PREFIX",
    "REPLAY_SPAN",
    "REQUIRED_SPANS",
    "RESTART_SPAN",
    "CapturedTelemetry",
    "CheckResult",
    "Exporter",
    "HealthConfig",
    "HealthReport",
    "HealthStatus",
    "Instruments",
    "JsonFormatter",
    "KeepRequiredSampler",
    "LogConfig",
    "Progress",
    "ProgressSnapshot",
    "ReplayRecorder",
    "TelemetryConfig",
    "TelemetryHandle",
    "capture_telemetry",
    "check_health",
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
    "replay_span",
    "reset_logging",
    "run_progress",
    "settle_span",
    "settled",
    "use_instruments",
]
