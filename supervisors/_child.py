"""What a supervisor is told about a child (``ChildSpec``) and what it reports about it."""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

import msgspec
from anyio.abc import TaskStatus

from policies import ValidationFailed, check_bounds
from supervisors._down import ChildDown

__all__ = [
    "ChildInfo",
    "ChildSpec",
    "ChildStart",
    "ChildState",
    "Failure",
    "Restart",
    "RestartReason",
]


class Restart(enum.StrEnum):
    """When a child that ended is started again (OTP restart types)."""

    PERMANENT = "permanent"
    """Always restarted, even after returning normally."""
    TRANSIENT = "transient"
    """Restarted only after an abnormal end (exception, hang, escalation)."""
    TEMPORARY = "temporary"
    """Never restarted; also not restarted when a sibling's failure stops it."""


class RestartReason(enum.StrEnum):
    """Why a child ended without being asked to."""

    EXCEPTION = "exception"
    """It raised."""
    EXIT = "exit"
    """It returned normally (a restart reason only for permanent children)."""
    HANG = "hang"
    """It missed its heartbeat deadline and was cancelled."""
    ESCALATION = "escalation"
    """It was a supervisor and gave up (raised ``SupervisorEscalation``)."""


class ChildState(enum.StrEnum):
    """Where a child is in its life, as ``which_children()`` reports it."""

    STARTING = "starting"
    """Spawned, ``task_status.started()`` not yet called."""
    RESTARTING = "restarting"
    """Waiting out a restart backoff before it is started again; it can be terminated."""
    RUNNING = "running"
    """Initialised: ``task_status.started()`` was called."""
    STOPPING = "stopping"
    """Cancelled by its supervisor, running its cleanup within ``shutdown_timeout``."""
    STOPPED = "stopped"
    """Not running: ended and not (yet) restarted, or stopped by its supervisor."""


class ChildStart(Protocol):
    """The async callable that runs one incarnation of a child.

    It must call ``task_status.started()`` once initialised; until then the child does not
    count as running and its supervisor's own start is waiting for it.
    """

    def __call__(self, *, task_status: TaskStatus[Any]) -> Awaitable[object]: ...


class ChildSpec(msgspec.Struct, frozen=True, kw_only=True):
    """How to run and restart one child.

    Attributes:
        id: unique among the supervisor's children; names it in telemetry and errors.
        start: async callable taking ``task_status`` (see :class:`ChildStart`).
        restart: when to start it again after it ends (:class:`Restart`).
        shutdown_timeout: seconds the child's cleanup may run inside
            :func:`supervisors.shutdown_grace` once its supervisor stops it, before that
            cleanup is cancelled too. ``0`` cancels cleanup at once (OTP ``brutal_kill``);
            ``math.inf`` waits for as long as it takes (the right value for a child that is
            itself a supervisor, since it stops its own children first).
        significant: with the supervisor's ``auto_shutdown``, this child ending (and not
            being restarted) shuts the supervisor down. Only transient or temporary children
            can be significant, as in OTP.
        heartbeat_timeout: if set, the child must call :func:`supervisors.heartbeat` at
            least this often (seconds, counted from its start); when it does not, it is
            cancelled and handled as a crash with reason ``hang``.
        on_down: if set, called synchronously with a :class:`~supervisors.ChildDown` when
            the child's life ends, i.e. it ends and its supervisor will not start it again:
            a temporary or transient child that returned, a child that crashed and is not
            restarted (temporary, or the crash that made the supervisor give up), a child
            terminated or stopped by its supervisor (``terminate_child``, the supervisor's
            stop, the supervisor giving up, a temporary child caught in a group restart),
            or a child abandoned past its stop deadline. Never called between a crash and
            its restart. It runs inside the supervisor's control path, so it must be quick
            and must not block; an exception it raises is logged and otherwise ignored.

    Raises:
        ValidationFailed: on construction (a ``ValueError``), naming the field: an empty
            id, a negative ``shutdown_timeout``, a non-positive or infinite
            ``heartbeat_timeout``, or a significant permanent child.
    """

    id: Annotated[str, msgspec.Meta(min_length=1)]
    start: ChildStart
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: Annotated[float, msgspec.Meta(ge=0.0)] = 5.0
    significant: bool = False
    heartbeat_timeout: Annotated[float, msgspec.Meta(gt=0.0)] | None = None
    on_down: Callable[[ChildDown], None] | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValidationFailed("child id must not be empty", field="id")
        check_bounds(self)
        if self.heartbeat_timeout is not None and math.isinf(self.heartbeat_timeout):
            raise ValidationFailed(
                f"heartbeat_timeout must be finite, got {self.heartbeat_timeout}",
                field="heartbeat_timeout",
            )
        if self.significant and self.restart is Restart.PERMANENT:
            raise ValidationFailed(
                f"child {self.id!r}: a permanent child cannot be significant",
                field="significant",
            )


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """The last abnormal end of a child, kept as text so no traceback or frame is retained.

    Attributes:
        reason: why it ended.
        at: supervisor clock time (``anyio.current_time()``) of the end.
        error_type: qualified name of the exception's type, if there was one.
        message: ``str()`` of the exception, truncated to 200 characters.
    """

    reason: RestartReason
    at: float
    error_type: str | None = None
    message: str | None = None


class ChildInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one child, as returned by ``which_children()``.

    Attributes:
        id: the child's id.
        state: its :class:`ChildState` at the time of the call.
        restart: its restart type.
        restarts: how many times it was started again after its first start (restarts it
            took part in, including group restarts caused by a sibling).
        last_failure: its last abnormal end, or ``None``.
    """

    id: str
    state: ChildState
    restart: Restart
    restarts: int
    last_failure: Failure | None
