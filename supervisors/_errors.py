"""Errors a supervisor raises, each one a case a caller can act on."""

from __future__ import annotations

from policies import GarrisonError

__all__ = [
    "ChildExited",
    "ChildHung",
    "ChildNotFound",
    "ChildRunning",
    "ChildStartError",
    "DuplicateChild",
    "SupervisorError",
    "SupervisorEscalation",
    "SupervisorNotRunning",
    "TaskStopped",
    "TooManyChildren",
]


class SupervisorError(GarrisonError):
    """Base class of the errors raised by ``supervisors``."""


class SupervisorEscalation(SupervisorError):
    """A supervisor gave up: restart intensity was exceeded.

    Raised from ``run()`` after every child has been stopped in reverse start order. The
    failure that tipped it over is chained as ``__cause__``. A parent supervisor treats it as
    a crash of the child that ran this supervisor (restart reason ``escalation``).

    Attributes:
        supervisor: name of the supervisor that gave up.
        child_id: the child whose failure exceeded the intensity.
        reason: why that child ended (``exception``, ``exit``, ``hang`` or ``escalation``).
        restarts: restarts counted in the window, the refused one included.
        max_restarts: the policy's limit.
        period_s: the policy's window.
    """

    def __init__(
        self,
        *,
        supervisor: str,
        child_id: str,
        reason: str,
        restarts: int,
        max_restarts: int,
        period_s: float,
    ) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        self.reason = reason
        self.restarts = restarts
        self.max_restarts = max_restarts
        self.period_s = period_s
        super().__init__(
            f"supervisor {supervisor!r} gave up: child {child_id!r} ended ({reason}) and "
            f"{restarts} restarts within {period_s:g}s exceed max_restarts={max_restarts}"
        )


class ChildStartError(SupervisorError):
    """A child failed before calling ``task_status.started()`` when first started.

    Raised from ``Supervisor.run()`` (after the children already started were stopped in
    reverse order) and from ``DynamicSupervisor.start_child()``. The child's own exception is
    chained as ``__cause__``.
    """

    def __init__(self, supervisor: str, child_id: str) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        super().__init__(f"supervisor {supervisor!r}: child {child_id!r} failed to start")


class ChildHung(SupervisorError):
    """Stands in as the cause of a failure with reason ``hang``: no heartbeat in time."""


class ChildExited(SupervisorError):
    """Stands in as the cause of a failure with reason ``exit``: a permanent child returned."""


class TooManyChildren(SupervisorError):
    """``DynamicSupervisor.start_child()`` refused: ``max_children`` are already supervised."""


class ChildNotFound(SupervisorError, LookupError):
    """No child with that id is supervised (it never existed or has already ended)."""


class DuplicateChild(SupervisorError, ValueError):
    """A child with that id is already supervised; ids are unique per supervisor."""


class SupervisorNotRunning(SupervisorError):
    """The operation needs a running supervisor (inside ``run()``, not shutting down)."""


class ChildRunning(SupervisorError):
    """``restart_child``/``delete_child`` refused: the child is running (terminate it first)."""


class TaskStopped(SupervisorError):
    """A ``TaskSupervisor`` task was stopped (or abandoned) before it returned or raised."""
