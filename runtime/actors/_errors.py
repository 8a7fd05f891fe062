"""Errors of actor calls and handlers. All derive from :class:`policies.GarrisonError`."""

from __future__ import annotations

from policies import GarrisonError

__all__ = [
    "ActorError",
    "CallFailed",
    "CallTimeout",
    "CallingSelf",
    "Escalated",
    "HandlerTimeout",
]


class ActorError(GarrisonError):
    """Base of the actor errors; ``actor`` names the actor."""

    def __init__(self, message: str, *, actor: str) -> None:
        super().__init__(message)
        self.actor = actor


class CallTimeout(ActorError, TimeoutError):
    """``Actor.call`` got no reply within its timeout.

    The request may still be handled later unless the actor had not yet started on it
    (a request whose caller gave up is skipped). ``timeout`` is the limit in seconds.
    """

    def __init__(self, message: str, *, actor: str, timeout: float) -> None:
        super().__init__(message, actor=actor)
        self.timeout = timeout


class CallFailed(ActorError):
    """The actor failed while handling the request: its handler raised, timed out, or the
    actor was stopped or cancelled mid-way (e.g. as hung). The handler's exception, if
    any, is the ``__cause__``; ``error_type`` is its type's qualified name (as in
    ``supervisors.Failure``), ``None`` when the actor was stopped."""

    def __init__(self, message: str, *, actor: str, error_type: str | None) -> None:
        super().__init__(message, actor=actor)
        self.error_type = error_type


class HandlerTimeout(ActorError, TimeoutError):
    """A handler ran past the actor's ``handler_timeout``: a failure with reason
    ``timeout`` (the actor crashes with it, and its supervisor decides the restart)."""

    reason = "timeout"

    def __init__(self, message: str, *, actor: str, timeout: float) -> None:
        super().__init__(message, actor=actor)
        self.timeout = timeout


class CallingSelf(ActorError):
    """An actor's handler called its own actor with ``call``, which could only wait for
    its timeout (OTP ``calling_self``). Raised at once; nothing was sent."""


class Escalated(ActorError):
    """A handler's exception for which ``Behaviour.on_error`` chose ``ESCALATE``: the
    incarnation ends with this error (the handler's exception is the ``__cause__``) and
    does not run ``pre_restart``. ``error_type`` names the handler's exception type."""

    def __init__(self, message: str, *, actor: str, error_type: str) -> None:
        super().__init__(message, actor=actor)
        self.error_type = error_type
