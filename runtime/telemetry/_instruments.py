"""The former home of the per-item helpers, now split into ``_registry``, ``_propagation``,
``_messaging`` and ``_events``.

Kept only while modules outside this package still import it as ``tel`` (the layering
test lists them in its ``KNOWN_VIOLATIONS``); they are moving to ``runtime.telemetry``.
Delete this module when none is left.
"""

from runtime.telemetry._events import (
    dead_letter_written,
    item_rejected,
    items_shed,
    pressure_transition,
    replay_span,
)
from runtime.telemetry._messaging import (
    enqueue_span,
    items_enqueued,
    lease_contended,
    process_span,
    queue_depth,
    settle_span,
    settled,
)
from runtime.telemetry._propagation import extract_context
from runtime.telemetry._registry import current_instruments, register_depth_source

__all__ = [
    "current_instruments",
    "dead_letter_written",
    "enqueue_span",
    "extract_context",
    "item_rejected",
    "items_enqueued",
    "items_shed",
    "lease_contended",
    "pressure_transition",
    "process_span",
    "queue_depth",
    "register_depth_source",
    "replay_span",
    "settle_span",
    "settled",
]
