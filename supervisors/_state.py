"""The supervisor's bookkeeping per child, and the pure rules that read an ended incarnation."""

from __future__ import annotations

from supervisors._child import ChildSpec, ChildState, Failure, Restart, RestartReason
from supervisors._down import ChildDown, DownReason, _Watch
from supervisors._errors import ChildExited, ChildHung, SupervisorEscalation
from supervisors._heartbeat import ChildContext

__all__ = [
    "MESSAGE_LIMIT",
    "Child",
    "Stop",
    "cause_of",
    "down_reason",
    "needs_restart",
    "reason_of",
]

MESSAGE_LIMIT = 200


class Child:
    """The supervisor's bookkeeping for one child id (fixed size, reused across restarts)."""

    __slots__ = (
        "alive",
        "attempt",
        "current",
        "last_down",
        "last_failure",
        "queued",
        "restarts",
        "spec",
        "state",
        "watch",
    )

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.state = ChildState.STOPPED
        self.restarts = 0
        self.attempt = 0
        self.last_failure: Failure | None = None
        self.current: ChildContext | None = None
        self.queued = False
        # A life spans restarts: it begins with a start that is not a restart and ends with
        # exactly one ChildDown (Engine._down), which ``watch`` hands to the monitors.
        self.alive = False
        self.watch: _Watch | None = None
        self.last_down: ChildDown | None = None


class Stop:
    """Why the control loop ended: an error to raise, or (``error is None``) a clean
    auto-shutdown."""

    __slots__ = ("cause", "error")

    def __init__(self, error: BaseException | None = None, cause: BaseException | None = None):
        self.error = error
        self.cause = cause


def needs_restart(restart: Restart, reason: RestartReason) -> bool:
    """OTP's restart types: whether a child that ended for ``reason`` is started again."""
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TEMPORARY:
        return False
    # A child supervisor that gave up exits with ``shutdown`` in OTP, which is a normal
    # exit for a transient child.
    return reason is not RestartReason.EXIT and reason is not RestartReason.ESCALATION


_DOWN_REASONS = {
    RestartReason.EXIT: DownReason.NORMAL,
    RestartReason.EXCEPTION: DownReason.CRASHED,
    RestartReason.HANG: DownReason.CRASHED,
    RestartReason.ESCALATION: DownReason.SHUTDOWN,
}


def down_reason(reason: RestartReason) -> DownReason:
    """The down reason of a child that ended on its own and is not restarted."""
    return _DOWN_REASONS[reason]


def reason_of(ctx: ChildContext) -> RestartReason:
    """Why an incarnation that its supervisor did not stop ended."""
    # The scope is only ever cancelled by our stop (excluded by the caller) or by the
    # heartbeat deadline, whatever the child did with the resulting Cancelled.
    if ctx._scope.cancel_called:
        return RestartReason.HANG
    if isinstance(ctx.error, SupervisorEscalation):
        return RestartReason.ESCALATION
    if ctx.error is not None:
        return RestartReason.EXCEPTION
    return RestartReason.EXIT


def cause_of(spec: ChildSpec, ctx: ChildContext, reason: RestartReason) -> BaseException:
    """The exception that stands for an incarnation's end (its own, or a stand-in)."""
    if ctx.error is not None and reason is not RestartReason.HANG:
        return ctx.error
    if reason is RestartReason.HANG:
        return ChildHung(f"child {spec.id!r} sent no heartbeat within {spec.heartbeat_timeout:g}s")
    if ctx.is_started:
        return ChildExited(f"permanent child {spec.id!r} returned")
    return ChildExited(f"child {spec.id!r} returned before calling task_status.started()")
