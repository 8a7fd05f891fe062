"""Event reporting: dead letters, pressure transitions and sheds, intake refusals, and
replays; each a span (kept whatever the sample ratio, see ``KeepRequiredSampler``), a
counter and a log line.

The span names here are the ones operators rely on; ``REQUIRED_SPANS`` lists them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Final

from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from runtime.telemetry import _registry
from runtime.telemetry._messaging import MESSAGING_SYSTEM
from runtime.telemetry._propagation import DEAD_LETTER_CONTEXT_KEY, extract_context, span_carrier

__all__ = [
    "DEAD_LETTER_SPAN",
    "ESCALATION_SPAN",
    "LEVELS",
    "PRESSURE_SPAN",
    "REPLAY_SPAN",
    "RESTART_SPAN",
    "ReplayRecorder",
    "dead_letter_written",
    "item_rejected",
    "items_shed",
    "pressure_level_gauge",
    "pressure_transition",
    "replay_span",
]

DEAD_LETTER_SPAN: Final = "garrison.dead_letter.write"
PRESSURE_SPAN: Final = "garrison.pressure.transition"
REPLAY_SPAN: Final = "garrison.replay"
# The supervisors report these two (supervisors/_telemetry.py); named here too so that the
# sampler can keep them without this package importing the supervisors' private module. A
# test holds the two spellings equal.
RESTART_SPAN: Final = "garrison.supervisor.restart"
ESCALATION_SPAN: Final = "garrison.supervisor.escalation"
#: Pressure levels and the value the ``garrison.pressure.level`` gauge reports for each.
LEVELS: Final[Mapping[str, int]] = {"normal": 0, "elevated": 1, "critical": 2}

_store_log = logging.getLogger("garrison.store")
_pressure_log = logging.getLogger("garrison.pressure")
_replay_log = logging.getLogger("garrison.replay")
for _logger in (_store_log, _pressure_log, _replay_log):
    # A library must not print through logging's last-resort handler when the app
    # configured none (as supervisors._telemetry does).
    _logger.addHandler(logging.NullHandler())


def dead_letter_written(
    *,
    reason: str,
    topic: str,
    item_id: str,
    attempts: int,
    max_attempts: int | None = None,
    queue: str | None = None,
    error_type: str | None = None,
) -> None:
    """Report one dead letter: a ``garrison.dead_letter.write`` span, a counter, a log line."""
    inst = _registry._current
    inst.dead_lettered.add(1, {"garrison.topic": topic, "garrison.reason": reason})
    span = inst.tracer.start_span(DEAD_LETTER_SPAN, kind=SpanKind.INTERNAL)
    if span.is_recording():
        span.set_attributes(
            {
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.destination.name": topic,
                "messaging.message.id": item_id,
                "garrison.dead_letter.reason": reason,
                "garrison.attempt": attempts,
            }
        )
        if max_attempts is not None:
            span.set_attribute("garrison.max_attempts", max_attempts)
        if queue is not None:
            span.set_attribute("garrison.queue", queue)
        if error_type is not None:
            span.set_attribute("error.type", error_type)
    span.end()
    # Shedding drops items by the hundred on purpose; its warning is one line per shed
    # (items_shed), so each shed item's own line is only INFO.
    level = logging.INFO if reason == "shed" else logging.WARNING
    if _store_log.isEnabledFor(level):
        _store_log.log(
            level,
            "item %s dead-lettered (%s) after %d attempt(s)",
            item_id,
            reason,
            attempts,
            extra={
                "event": "dead_lettered",
                "component": "store",
                "topic": topic,
                "item_id": item_id,
                "attempt": attempts,
                "max_attempts": max_attempts,
                "reason": reason,
                "queue": queue,
            },
        )


def item_rejected(topic: str, reason: str) -> None:
    """Count one item refused at intake on ``topic`` (``reason``: pressure, validation...)."""
    _registry._current.rejected.add(1, {"garrison.topic": topic, "garrison.reason": reason})


def items_shed(topic: str, n: int, reason: str, *, log: bool = False) -> None:
    """Count ``n`` items of ``topic`` dropped by a shed action for ``reason``.

    With ``log``, also one warning line for the lot (a shed of many items at once; a
    mailbox shedding one at a time only counts).
    """
    if n > 0:
        _registry._current.shed.add(n, {"garrison.topic": topic, "garrison.reason": reason})
        if log:
            _pressure_log.warning(
                "shed %d item(s) (%s)",
                n,
                reason,
                extra={
                    "event": "items_shed",
                    "component": "pressure",
                    "topic": topic,
                    "count": n,
                    "reason": reason,
                },
            )


def pressure_level_gauge(channel: str, level: str) -> None:
    """Publish ``channel``'s current pressure level (normal/elevated/critical) to the gauge."""
    _registry._current.set_level(channel, LEVELS.get(level, -1))


def pressure_transition(
    *,
    channel: str,
    from_level: str,
    to_level: str,
    depth: int,
    actions: Sequence[str],
) -> None:
    """Report a pressure level change: a ``garrison.pressure.transition`` span, a counter,
    the level gauge and a log line. (The audit row is the caller's ``store.record_event``.)
    """
    inst = _registry._current
    inst.set_level(channel, LEVELS.get(to_level, -1))
    inst.pressure_transitions.add(
        1, {"garrison.channel": channel, "garrison.pressure.level": to_level}
    )
    span = inst.tracer.start_span(PRESSURE_SPAN)
    if span.is_recording():
        span.set_attributes(
            {
                "garrison.channel": channel,
                "garrison.pressure.from": from_level,
                "garrison.pressure.to": to_level,
                "garrison.pressure.depth": depth,
                "garrison.pressure.actions": list(actions),
            }
        )
    span.end()
    if _pressure_log.isEnabledFor(logging.WARNING):
        _pressure_log.warning(
            "pressure on %s: %s -> %s (depth %d)",
            channel,
            from_level,
            to_level,
            depth,
            extra={
                "event": "pressure_transition",
                "component": "pressure",
                "channel": channel,
                "from_level": from_level,
                "to_level": to_level,
                "depth": depth,
                "actions": list(actions),
            },
        )


class ReplayRecorder:
    """What a :func:`replay_span` block reports through."""

    __slots__ = ("_done", "_span", "_topic", "dead_letter_id", "new_item_id")

    def __init__(self, span: Span, dead_letter_id: str, topic: str | None) -> None:
        self._span = span
        self._topic = topic
        self._done = False
        self.dead_letter_id = dead_letter_id
        self.new_item_id: str | None = None

    def trace_context(self) -> dict[str, str]:
        """Entries to add to the new item's ``trace_context`` so its process span links to
        this replay (empty when nothing records)."""
        if not self._span.get_span_context().is_valid:
            return {}
        traceparent = span_carrier(self._span).get("traceparent")
        return {DEAD_LETTER_CONTEXT_KEY: traceparent} if traceparent else {}

    def replayed(self, new_item_id: str) -> None:
        """The dead letter was enqueued again as ``new_item_id`` (once; later calls are
        ignored)."""
        if self._done:
            return
        self.new_item_id = new_item_id
        self._finish("replayed")
        if self._span.is_recording():
            self._span.set_attribute("garrison.replay.new_item_id", new_item_id)
            self._span.set_attribute("messaging.message.id", new_item_id)

    def refused(self, reason: str) -> None:
        """The replay was refused (already replayed, archived, not found...)."""
        self._finish(reason)
        self._span.set_status(Status(StatusCode.ERROR, reason))

    def _finish(self, outcome: str) -> None:
        if self._done:
            return
        self._done = True
        attributes = {"garrison.outcome": outcome}
        if self._topic is not None:
            attributes["garrison.topic"] = self._topic
        _registry._current.replays.add(1, attributes)
        if self._span.is_recording():
            self._span.set_attribute("garrison.outcome", outcome)


@contextmanager
def replay_span(
    dead_letter_id: str,
    *,
    topic: str | None = None,
    trace_context: Mapping[str, str] | None = None,
    forced: bool = False,
) -> Iterator[ReplayRecorder]:
    """A ``garrison.replay`` span around replaying one dead letter.

    The span links to the dead item's enqueue context (``trace_context``, the dead item's
    envelope). Call ``recorder.replayed(new_id)`` or ``recorder.refused(reason)``; an
    exception leaving the block counts as refused with the exception's type name.
    """
    inst = _registry._current
    links = None
    dead = extract_context(trace_context)
    if dead is not None:
        links = [Link(dead, {"garrison.link": "dead_letter"})]
    with inst.tracer.start_as_current_span(
        REPLAY_SPAN, kind=SpanKind.PRODUCER, links=links, record_exception=True
    ) as span:
        if span.is_recording():
            span.set_attribute("garrison.dead_letter.id", dead_letter_id)
            span.set_attribute("garrison.replay.forced", forced)
            span.set_attribute("messaging.system", MESSAGING_SYSTEM)
            if topic is not None:
                span.set_attribute("messaging.destination.name", topic)
        recorder = ReplayRecorder(span, dead_letter_id, topic)
        try:
            yield recorder
        except Exception as exc:
            recorder.refused(type(exc).__name__)
            raise
    if recorder.new_item_id is not None and _replay_log.isEnabledFor(logging.INFO):
        _replay_log.info(
            "dead letter %s replayed as %s",
            dead_letter_id,
            recorder.new_item_id,
            extra={
                "event": "replayed",
                "component": "replay",
                "topic": topic,
                "item_id": recorder.new_item_id,
                "dead_letter_id": dead_letter_id,
            },
        )
