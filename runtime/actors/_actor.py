"""``Actor``: a supervised task with a bounded mailbox, ``cast`` and ``call``."""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar, cast

import anyio
import msgspec
from anyio.abc import TaskStatus

from policies import PressureLevel, PressurePolicy
from runtime._errors import PressureRejected
from runtime.actors._behaviour import ActorContext, Behaviour, CheckpointStore
from runtime.actors._errors import CallingSelf, CallTimeout
from runtime.actors._incarnation import _Call, _Incarnation, _running
from runtime.actors._mailbox import Mailbox, MailboxStatistics
from runtime.actors._pressure import TransitionHook
from supervisors import ChildSpec, Restart

__all__ = ["Actor", "ActorStatistics"]

M = TypeVar("M")
R = TypeVar("R")


class ActorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of an :class:`Actor`.

    Attributes:
        name: the actor's name.
        running: whether an incarnation is running now.
        incarnations: how many times it was started (restarts = ``incarnations - 1``).
        handled: messages handled successfully (casts and calls).
        failed: messages whose handler raised or timed out.
        calls: ``call`` requests made.
        call_timeouts: calls that got no reply in time.
        skipped: requests not handled because their caller had already given up.
        mailbox: the mailbox's statistics.
        resumed: failed messages after which the actor went on (``Directive.RESUME``).
    """

    name: str
    running: bool
    incarnations: int
    handled: int
    failed: int
    calls: int
    call_timeouts: int
    skipped: int
    mailbox: MailboxStatistics
    resumed: int = 0


class Actor(Generic[M, R]):
    """A task with a bounded mailbox, run (and restarted) by a supervisor.

    Args:
        name: the actor's name: its child id, its mailbox's channel name and its
            checkpoint key.
        behaviour: a factory called once per incarnation (see :class:`Behaviour`,
            :func:`from_handler`).
        capacity: the mailbox's bound (default 64).
        policy: the mailbox's pressure policy (``None``: full means wait).
        store: where checkpoints go (``save_checkpoint``/``load_checkpoint``), e.g. a
            :class:`runtime.Store`; ``None``: no checkpoints.
        call_timeout: default timeout of :meth:`call`, in seconds.
        handler_timeout: the most one ``handle`` may take (seconds; ``None``: no limit);
            past it the handler is cancelled and the actor fails with
            :class:`HandlerTimeout` (reason ``timeout``).
        heartbeat_timeout: hang detection: passed to :meth:`child_spec`; the actor
            heartbeats on every message and while idle, so only a handler running longer
            than this counts as a hang (it is cancelled and restarted by the supervisor).
        on_transition: the mailbox's transition hook (see :class:`Mailbox`).
        on_shed: called with ``(message, priority)`` for each message the mailbox sheds.
            A shed ``call`` request also fails its caller with ``PressureRejected``.

    The mailbox belongs to the actor object, not to an incarnation: it outlives restarts,
    and messages sent while the actor is restarting wait for the next incarnation. The
    message being handled when an incarnation crashes is lost (a ``call`` caller gets
    :class:`CallFailed`); durable work is acknowledged through the store, not here.

    Raises:
        ValueError: ``capacity < 1`` or a non-positive timeout.
    """

    def __init__(
        self,
        name: str,
        behaviour: Callable[[], Behaviour[M, R]],
        *,
        capacity: int = 64,
        policy: PressurePolicy | None = None,
        store: CheckpointStore | None = None,
        call_timeout: float = 5.0,
        handler_timeout: float | None = 30.0,
        heartbeat_timeout: float | None = None,
        on_transition: TransitionHook | None = None,
        on_shed: Callable[[M, int], object] | None = None,
    ) -> None:
        for label, value in (
            ("call_timeout", call_timeout),
            ("handler_timeout", handler_timeout),
            ("heartbeat_timeout", heartbeat_timeout),
        ):
            if value is not None and not value > 0:
                raise ValueError(f"{label} must be > 0, got {value}")
        if heartbeat_timeout is not None and math.isinf(heartbeat_timeout):
            raise ValueError("heartbeat_timeout must be finite")
        self._name = name
        self._factory = behaviour
        self._store = store
        self._call_timeout = call_timeout
        self._handler_timeout = handler_timeout
        self._heartbeat_timeout = heartbeat_timeout
        self._shutdown_timeout = 5.0
        self._on_shed = on_shed
        self._mailbox: Mailbox[M | _Call[M, R]] = Mailbox(
            capacity, name=name, policy=policy, on_transition=on_transition, on_shed=self._shed
        )
        self._active = False
        self._incarnations = self._handled = self._failed = self._resumed = 0
        self._calls = self._call_timeouts = self._skipped = 0

    # -- introspection ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """The actor's name."""
        return self._name

    @property
    def level(self) -> PressureLevel:
        """The mailbox's pressure level now."""
        return self._mailbox.level

    @property
    def degraded(self) -> bool:
        """Whether the mailbox's level calls for ``degrade``."""
        return self._mailbox.degraded

    def statistics(self) -> ActorStatistics:
        """A frozen snapshot of the actor and its mailbox."""
        return ActorStatistics(
            name=self._name,
            running=self._active,
            incarnations=self._incarnations,
            handled=self._handled,
            failed=self._failed,
            calls=self._calls,
            call_timeouts=self._call_timeouts,
            skipped=self._skipped,
            mailbox=self._mailbox.statistics(),
            resumed=self._resumed,
        )

    # -- messages --------------------------------------------------------------------

    def cast(self, message: M, *, priority: int = 0) -> Coroutine[Any, Any, None]:
        """Send ``message`` without waiting for it to be handled: ``await actor.cast(m)``.

        Subject to the mailbox's pressure actions (see :meth:`Mailbox.send`): it may
        wait (throttle, full), be shed (``on_shed``), or be refused.

        Raises:
            PressureRejected: refused by the ``reject`` action.
            anyio.ClosedResourceError: the actor was closed.
        """
        # The mailbox's own coroutine, not one wrapped in another: a frame less per cast.
        return self._mailbox.send(message, priority)

    def cast_nowait(self, message: M, *, priority: int = 0) -> None:
        """:meth:`cast` without waiting.

        Raises:
            anyio.WouldBlock: the mailbox is full, or throttled with no token now.
            PressureRejected: refused by the ``reject`` action.
            anyio.ClosedResourceError: the actor was closed.
        """
        self._mailbox.send_nowait(message, priority)

    async def call(self, message: M, *, timeout: float | None = None, priority: int = 0) -> R:
        """Send ``message`` and wait for the handler's reply.

        ``timeout`` (default: the actor's ``call_timeout``) covers both getting into the
        mailbox and the reply. A request whose caller gave up is skipped if the actor has
        not started on it yet.

        Cancellation: if cancelled before the reply, the request is abandoned like a
        timed-out one.

        Raises:
            CallTimeout: no reply within ``timeout``.
            CallFailed: the handler raised (its exception is the ``__cause__``), timed
                out, or the actor was stopped while handling the request.
            CallingSelf: called from the actor's own incarnation (nothing is sent).
            PressureRejected: the request was refused or shed by the mailbox's policy.
            anyio.ClosedResourceError: the actor was closed.
        """
        if _running.get() is self:
            raise CallingSelf(f"actor {self._name!r} called itself", actor=self._name)
        limit = self._call_timeout if timeout is None else timeout
        request: _Call[M, R] = _Call(message)
        self._calls += 1
        try:
            with anyio.move_on_after(limit):
                await self._mailbox.send(request, priority)
                await request.done.wait()
        finally:
            # Timed out or cancelled: the actor skips the request if it has not begun.
            request.abandoned = not request.done.is_set()
        if request.abandoned:
            self._call_timeouts += 1
            raise CallTimeout(
                f"actor {self._name!r} did not reply within {limit} s",
                actor=self._name,
                timeout=limit,
            )
        if request.error is not None:
            raise request.error
        return cast(R, request.result)

    def close(self) -> None:
        """Close the mailbox: further sends fail; the running incarnation handles what is
        buffered and then returns normally (not restarted when ``transient``)."""
        self._mailbox.close()

    def _shed(self, item: M | _Call[M, R], priority: int) -> None:
        if isinstance(item, _Call):
            mailbox = self._mailbox
            item.fail(
                PressureRejected(
                    f"call to actor {self._name!r} shed under pressure",
                    channel=self._name,
                    level=mailbox.level.value,
                    depth=len(mailbox),
                )
            )
            message = cast(M, item.message)
        else:
            message = item
        if self._on_shed is not None:
            self._on_shed(message, priority)

    # -- running ---------------------------------------------------------------------

    def child_spec(
        self,
        id: str | None = None,
        *,
        restart: Restart = Restart.TRANSIENT,
        shutdown_timeout: float = 5.0,
        significant: bool = False,
    ) -> ChildSpec:
        """A :class:`supervisors.ChildSpec` running this actor (id defaults to its name).

        ``transient`` by default: restarted after a crash or hang, not after
        :meth:`close` has let it finish. The spec carries the actor's
        ``heartbeat_timeout`` and bounds the behaviour's end hooks by ``shutdown_timeout``.
        """
        self._shutdown_timeout = shutdown_timeout
        return ChildSpec(
            id=self._name if id is None else id,
            start=self.run,
            restart=restart,
            shutdown_timeout=shutdown_timeout,
            significant=significant,
            heartbeat_timeout=self._heartbeat_timeout,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run one incarnation: load the checkpoint, start the behaviour, handle messages.

        Calls ``task_status.started()`` once the behaviour's ``started`` returned, so it
        fits ``task_group.start`` and supervisors. Returns when the actor is closed and
        its mailbox drained, or when a handler's error is decided ``STOP``.

        With a ``handler_timeout`` or a ``heartbeat_timeout``, a watchdog task runs beside
        the message loop, which itself pays only a clock read per message for it. The
        watchdog cancels a handler that runs past ``handler_timeout`` exactly at that
        deadline. Heartbeats are sent every eighth of ``heartbeat_timeout`` while the
        actor is idle or its handler started less than that long ago (and by the loop at
        a message's start when the last one is older), so a handler is reported hung once
        it has run between 7/8 and 9/8 of ``heartbeat_timeout``: one that finishes within
        7/8 of it never is, one stuck for 9/8 of it always is.

        Raises:
            RuntimeError: another incarnation of this actor is running.
            HandlerTimeout, :class:`Escalated`, or whatever the behaviour raised: the
            actor crashed.

        Cancellation: stops between or during messages; a ``call`` being handled fails
        with ``CallFailed``; buffered messages stay for the next incarnation.
        """
        if self._active:
            raise RuntimeError(f"actor {self._name!r} is already running")
        self._active = True
        token = _running.set(self)
        try:
            self._incarnations += 1
            restored = None
            if self._store is not None:
                restored = await self._store.load_checkpoint(self._name)
            ctx = ActorContext(self, self._incarnations, restored)
            behaviour = self._factory()
            await behaviour.started(ctx)
            task_status.started()
            await _Incarnation(self, behaviour, ctx).run()
        finally:
            self._active = False
            _running.reset(token)
