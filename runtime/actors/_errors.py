"""Errors of actor calls and handlers. All derive from :class:`policies.GarrisonError`."""

from __future__ import annotations

import anyio

from policies import GarrisonError

__all__ = [
    "ActorError",
    "ActorGone",
    "CallFailed",
    "CallTimeout",
    "CallingSelf",
    "Escalated",
    "HandlerTimeout",
    "NameTaken",
    "NotRegistered",
    "RegistryFull",
    "TooManyWatchers",
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


class ActorGone(ActorError, anyio.ClosedResourceError):
    """The actor is down for good (OTP ``noproc``): its supervisor will not restart it, or
    it ran unsupervised and ended. Raised at once by ``cast``/``call`` while it is down,
    and to callers whose request was still queued when it went down.

    It is also an ``anyio.ClosedResourceError``, which is what sending to a closed actor
    raises, so code written for a closed actor handles a gone one too. ``reason`` is the
    :class:`supervisors.DownReason` value (``"normal"``, ``"shutdown"``, ``"crashed"``...).
    The actor accepts messages again once it is started again (e.g. its parent restarted
    the tree).
    """

    def __init__(self, message: str, *, actor: str, reason: str) -> None:
        super().__init__(message, actor=actor)
        self.reason = reason


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


class NotRegistered(ActorError, LookupError):
    """``Registry.lookup`` of a name no running actor holds; ``actor`` is that name."""


class NameTaken(ActorError):
    """Another actor already holds this name in the registry; ``actor`` is the name."""


class RegistryFull(ActorError):
    """The registry holds ``max_names`` names already; ``actor`` is the name refused."""

    def __init__(self, message: str, *, actor: str, max_names: int) -> None:
        super().__init__(message, actor=actor)
        self.max_names = max_names


class TooManyWatchers(ActorError):
    """``Actor.watch`` past the actor's ``max_watchers`` live watches."""

    def __init__(self, message: str, *, actor: str, max_watchers: int) -> None:
        super().__init__(message, actor=actor)
        self.max_watchers = max_watchers
