"""What an actor does (:class:`Behaviour`), what it sees (:class:`ActorContext`), and how a
failure is decided (:class:`Directive`) and reported to the stop hook (:class:`StopReason`)."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from policies import PressureLevel

if TYPE_CHECKING:
    from runtime.actors._actor import Actor

__all__ = [
    "ActorContext",
    "Behaviour",
    "CheckpointStore",
    "Directive",
    "StopReason",
    "from_handler",
]

M = TypeVar("M")
R = TypeVar("R")


class CheckpointStore(Protocol):
    """Where actors keep state snapshots; :class:`runtime.Store` is one."""

    async def save_checkpoint(self, name: str, state: bytes) -> None:
        """Keep ``state`` as the latest snapshot of ``name``."""

    async def load_checkpoint(self, name: str) -> bytes | None:
        """The latest snapshot of ``name``, or ``None``."""


class Directive(enum.StrEnum):
    """What to do about one exception of a handler (Akka's supervisor directives), as
    :meth:`Behaviour.on_error` decides it. In every case a ``call`` caller of the failed
    message gets :class:`CallFailed`."""

    RESUME = "resume"
    """Drop the message and go on with the same behaviour instance (state kept)."""
    RESTART = "restart"
    """Crash the incarnation with the exception: ``pre_restart``, ``stopped``, then the
    supervisor decides (by the child's restart type and its intensity). The default."""
    STOP = "stop"
    """End the incarnation normally without handling what is still queued: a transient
    or temporary actor (the :meth:`Actor.child_spec` default is transient) stays down, so
    its queued callers fail with :class:`ActorGone`; a permanent one is restarted, as OTP
    restarts a permanent child that exited normally."""
    ESCALATE = "escalate"
    """End the incarnation with :class:`Escalated` (the exception as its cause) for the
    supervisor to handle; no ``pre_restart``."""


class StopReason(enum.StrEnum):
    """Why an incarnation ended, as given to :meth:`Behaviour.stopped`."""

    NORMAL = "normal"
    """The mailbox was closed and drained, or a handler's error was decided ``STOP``."""
    CRASHED = "crashed"
    """A handler raised (``RESTART`` or ``ESCALATE``) or ran past ``handler_timeout``."""
    SHUTDOWN = "shutdown"
    """Cancelled: the supervisor stopped it (or found it hung), or an outer scope did."""


class ActorContext:
    """What a behaviour sees of its actor during one incarnation.

    Attributes:
        actor: the actor's name.
        incarnation: 1 for the first start, then one more at every restart.
        restored: the last checkpoint saved by an earlier incarnation (loaded from the
            store before :meth:`Behaviour.started`), or ``None``.
    """

    __slots__ = ("_actor", "actor", "incarnation", "restored")

    def __init__(self, actor: Actor[Any, Any], incarnation: int, restored: bytes | None) -> None:
        self._actor = actor
        self.actor = actor.name
        self.incarnation = incarnation
        self.restored = restored

    @property
    def degraded(self) -> bool:
        """Whether the mailbox's pressure level calls for ``degrade``: skip optional work."""
        return self._actor.degraded

    @property
    def level(self) -> PressureLevel:
        """The mailbox's pressure level now."""
        return self._actor.level

    async def checkpoint(self, state: bytes) -> None:
        """Save ``state`` as this actor's snapshot; the next incarnation gets it back.

        Raises:
            RuntimeError: the actor was built without a ``store``.
            Whatever the store raises (e.g. ``ValidationFailed`` over the size limit,
            ``StoreUnavailable``); the previous snapshot then stays.
        """
        store = self._actor._store
        if store is None:
            raise RuntimeError(f"actor {self.actor!r} has no checkpoint store")
        await store.save_checkpoint(self.actor, state)


class Behaviour(Generic[M, R]):
    """What an actor does. Subclass it; a fresh instance runs each incarnation.

    State kept on the instance therefore starts afresh after a crash (unless
    :meth:`on_error` resumes); what must survive a restart goes through
    :meth:`ActorContext.checkpoint` and comes back as ``ctx.restored``.

    Order of the hooks in one incarnation: ``started``, then ``handle`` per message (with
    ``on_error`` for each exception), then at the end ``pre_restart`` (only for a crash
    decided ``RESTART``) and ``stopped``. The two end hooks run only if ``started``
    returned, shielded from the supervisor's stop and bounded together by the child's
    ``shutdown_timeout`` (cancelled past it); an exception from them is logged on
    ``garrison.actors`` and does not change how the incarnation ended.
    """

    async def started(self, ctx: ActorContext) -> None:
        """Called once per incarnation before any message (default: nothing).

        Restore state from ``ctx.restored`` here. Raising fails the start.
        """

    async def handle(self, ctx: ActorContext, message: M) -> R:
        """Handle one message; the result is the reply to a :meth:`Actor.call`.

        Raising fails the message (the caller of a ``call`` gets ``CallFailed``) and
        :meth:`on_error` decides what happens to the actor; by default it crashes and its
        supervisor decides on the restart. Messages still in the mailbox wait for the
        next incarnation.
        """
        raise NotImplementedError

    def on_error(self, ctx: ActorContext, message: M, error: Exception) -> Directive:
        """Decide what a handler's exception does to the actor (default: ``RESTART``).

        Called synchronously for every exception :meth:`handle` raises (not for handler
        timeouts, hangs or cancellation, which always end the incarnation). Raising here
        crashes the incarnation with that exception.
        """
        return Directive.RESTART

    async def pre_restart(self, ctx: ActorContext, error: Exception) -> None:
        """Called when a handler's exception crashes the incarnation (``RESTART``, or a
        handler timeout), before :meth:`stopped`: e.g. checkpoint what the next
        incarnation should get back. Default: nothing."""

    async def stopped(self, ctx: ActorContext, reason: StopReason) -> None:
        """Release what :meth:`started` acquired; called at every end of an incarnation
        that started (normal, crash, shutdown). Default: nothing.

        Cancellation: shielded from the stop; cancelled once the child's
        ``shutdown_timeout`` has passed.
        """


class _FunctionBehaviour(Behaviour[M, R]):
    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[ActorContext, M], Awaitable[R]]) -> None:
        self._fn = fn

    async def handle(self, ctx: ActorContext, message: M) -> R:
        return await self._fn(ctx, message)


def from_handler(
    fn: Callable[[ActorContext, M], Awaitable[R]],
) -> Callable[[], Behaviour[M, R]]:
    """A behaviour factory for a stateless ``async def fn(ctx, message) -> reply``."""
    return lambda: _FunctionBehaviour(fn)
