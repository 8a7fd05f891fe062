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

from runtime.telemetry._events import (
    DEAD_LETTER_SPAN,
    ESCALATION_SPAN,
    LEVELS,
    PRESSURE_SPAN,
    REPLAY_SPAN,
    RESTART_SPAN,
    ReplayRecorder,
    dead_letter_written,
    item_rejected,
    items_shed,
    pressure_level_gauge,
    pressure_transition,
    replay_span,
)
from runtime.telemetry._logging import JsonFormatter, LogConfig, configure_logging, reset_logging
from runtime.telemetry._messaging import (
    MAX_SETTLE_LINKS,
    LeasedItem,
    OutgoingItem,
    enqueue_span,
    items_enqueued,
    lease_contended,
    process_span,
    queue_depth,
    settle_links,
    settle_span,
    settled,
)
from runtime.telemetry._progress import (
    PROGRESS_PREFIX,
    Progress,
    ProgressSnapshot,
    format_progress,
    parse_progress,
    pressure_level_now,
    run_progress,
)
from runtime.telemetry._propagation import DEAD_LETTER_CONTEXT_KEY, extract_context
from runtime.telemetry._registry import (
    DepthSample,
    Instruments,
    current_instruments,
    install_instruments,
    register_depth_source,
    use_instruments,
)

if TYPE_CHECKING:
    from runtime.telemetry._sampling import REQUIRED_SPANS, KeepRequiredSampler
    from runtime.telemetry._setup import (
        Exporter,
        TelemetryConfig,
        TelemetryHandle,
        configure_telemetry,
    )
    from runtime.telemetry._testing import CapturedTelemetry, capture_telemetry

# The SDK-side names load on first use, so library code importing the helpers above never
# imports the OpenTelemetry SDK.
_LAZY = {
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
    "ESCALATION_SPAN",
    "LEVELS",
    "PRESSURE_SPAN",
    "PROGRESS_PREFIX",
    "REPLAY_SPAN",
    "REQUIRED_SPANS",
    "RESTART_SPAN",
    "CapturedTelemetry",
    "DepthSample",
    "Exporter",
    "Instruments",
    "JsonFormatter",
    "KeepRequiredSampler",
    "LeasedItem",
    "LogConfig",
    "OutgoingItem",
    "Progress",
    "ProgressSnapshot",
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
    "MAX_SETTLE_LINKS",
    "settle_links",
    "settle_span",
    "settled",
    "use_instruments",
]
