"""Spans, span events, counters and log lines for restarts, hangs and escalations.

Only ``opentelemetry-api`` is used, so without a configured SDK every call is a cheap no-op.
Providers can be injected per supervisor (tests, embedding apps); the globals are the default.
"""

from __future__ import annotations

import logging

from opentelemetry import metrics, trace
from opentelemetry.trace import Status, StatusCode

from supervisors._child import RestartReason

__all__ = ["Telemetry", "logger"]

logger = logging.getLogger("garrison.supervisors")
# A library must not print through logging's last-resort handler when the app configured
# none; apps that want the lines add their own handler.
logger.addHandler(logging.NullHandler())

_SCOPE = "garrison.supervisors"

RESTART_SPAN = "garrison.supervisor.restart"
ESCALATION_SPAN = "garrison.supervisor.escalation"
HANG_EVENT = "garrison.supervisor.hang"
ABANDON_SPAN = "garrison.supervisor.abandon"


class Telemetry:
    """The instruments one supervisor reports through."""

    __slots__ = ("_abandoned", "_escalations", "_hangs", "_restarts", "_tracer", "supervisor")

    def __init__(
        self,
        supervisor: str,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.supervisor = supervisor
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self._restarts = meter.create_counter(
            "garrison.supervisor.restarts",
            unit="{restart}",
            description="Children restarted by a supervisor, by child id and reason.",
        )
        self._hangs = meter.create_counter(
            "garrison.supervisor.hangs",
            unit="{hang}",
            description="Children cancelled for missing their heartbeat deadline.",
        )
        self._escalations = meter.create_counter(
            "garrison.supervisor.escalations",
            unit="{escalation}",
            description="Times a supervisor exceeded its restart intensity and gave up.",
        )

        self._abandoned = meter.create_counter(
            "garrison.supervisor.abandoned",
            unit="{child}",
            description="Children still running past their stop deadline, left running.",
        )

    def _attributes(
        self, child_id: str, reason: RestartReason, error: BaseException | None
    ) -> dict[str, str]:
        attributes = {
            "garrison.supervisor.name": self.supervisor,
            "garrison.child.id": child_id,
            "garrison.restart.reason": reason.value,
        }
        if error is not None:
            attributes["exception.type"] = type(error).__qualname__
            attributes["exception.message"] = str(error)[:200]
        return attributes

    def restart(
        self,
        child_id: str,
        reason: RestartReason,
        error: BaseException | None,
        count: int,
        began_ns: int,
    ) -> None:
        """Report a restart that began at ``began_ns`` (``time.time_ns()``) and is done."""
        attributes: dict[str, str | int] = {
            **self._attributes(child_id, reason, error),
            "garrison.child.restarts": count,
        }
        trace.get_current_span().add_event(RESTART_SPAN, attributes, timestamp=began_ns)
        self._tracer.start_span(RESTART_SPAN, attributes=attributes, start_time=began_ns).end()
        self._restarts.add(
            1,
            {
                "garrison.supervisor.name": self.supervisor,
                "garrison.child.id": child_id,
                "garrison.restart.reason": reason.value,
            },
        )
        if logger.isEnabledFor(logging.WARNING):
            logger.warning(
                "supervisor %s restarting child %s (%s)",
                self.supervisor,
                child_id,
                reason.value,
                extra={
                    "supervisor": self.supervisor,
                    "child_id": child_id,
                    "reason": reason.value,
                    "restarts": count,
                    "error_type": attributes.get("exception.type"),
                },
            )

    def hang(self, child_id: str, timeout: float | None) -> None:
        """Report a child cancelled for missing its heartbeat deadline."""
        attributes: dict[str, str | float] = {
            "garrison.supervisor.name": self.supervisor,
            "garrison.child.id": child_id,
        }
        if timeout is not None:
            attributes["garrison.child.heartbeat_timeout_s"] = timeout
        trace.get_current_span().add_event(HANG_EVENT, attributes)
        self._hangs.add(
            1, {"garrison.supervisor.name": self.supervisor, "garrison.child.id": child_id}
        )
        logger.warning(
            "supervisor %s: child %s missed its heartbeat deadline, cancelled",
            self.supervisor,
            child_id,
            extra={
                "supervisor": self.supervisor,
                "child_id": child_id,
                "reason": RestartReason.HANG.value,
                "heartbeat_timeout": timeout,
            },
        )

    def escalation(
        self,
        child_id: str,
        reason: RestartReason,
        error: BaseException | None,
        message: str,
    ) -> None:
        """Report that the supervisor gave up."""
        attributes = self._attributes(child_id, reason, error)
        trace.get_current_span().add_event(ESCALATION_SPAN, attributes)
        span = self._tracer.start_span(ESCALATION_SPAN, attributes=attributes)
        span.set_status(Status(StatusCode.ERROR, message))
        span.end()
        self._escalations.add(
            1,
            {
                "garrison.supervisor.name": self.supervisor,
                "garrison.child.id": child_id,
                "garrison.restart.reason": reason.value,
            },
        )
        logger.error(
            "%s",
            message,
            extra={
                "supervisor": self.supervisor,
                "child_id": child_id,
                "reason": reason.value,
                "error_type": attributes.get("exception.type"),
            },
        )

    def abandoned(self, child_id: str, shutdown_timeout: float, kill_timeout: float) -> None:
        """Report a child that did not stop by its deadline and was abandoned."""
        attributes: dict[str, str | float] = {
            "garrison.supervisor.name": self.supervisor,
            "garrison.child.id": child_id,
            "garrison.child.shutdown_timeout_s": shutdown_timeout,
            "garrison.child.kill_timeout_s": kill_timeout,
        }
        trace.get_current_span().add_event(ABANDON_SPAN, attributes)
        span = self._tracer.start_span(ABANDON_SPAN, attributes=attributes)
        span.set_status(Status(StatusCode.ERROR, f"child {child_id!r} did not stop"))
        span.end()
        self._abandoned.add(
            1, {"garrison.supervisor.name": self.supervisor, "garrison.child.id": child_id}
        )
        logger.error(
            "supervisor %s: child %s did not stop within its deadline (shutdown_timeout %gs,"
            " kill_timeout %gs); abandoned, its task is left running",
            self.supervisor,
            child_id,
            shutdown_timeout,
            kill_timeout,
            extra={"supervisor": self.supervisor, "child_id": child_id},
        )
