"""``Actor``: a supervised task with a bounded mailbox, ``cast``, ``call`` and checkpoints."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar, cast

import anyio
import msgspec
from anyio.abc import TaskStatus
from anyio.lowlevel import checkpoint

from policies import PressureLevel, PressurePolicy
from runtime._errors import PressureRejected
from runtime._loop import fast_clock
from runtime.actors._errors import CallFailed, CallTimeout, HandlerTimeout
from runtime.actors._mailbox import Mailbox, MailboxStatistics, TransitionHook
from supervisors import ChildSpec, Restart, heartbeat

__all__ = [
    "Actor",
    "ActorContext",
    "ActorStatistics",
    "Behaviour",
    "CheckpointStore",
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

    State kept on the instance therefore starts afresh after a crash; what must survive
    goes through :meth:`ActorContext.checkpoint` and comes back as ``ctx.restored``.
    """

    async def started(self, ctx: ActorContext) -> None:
        """Called once per incarnation before any message (default: nothing).

        Restore state from ``ctx.restored`` here. Raising fails the start.
        """

    async def handle(self, ctx: ActorContext, message: M) -> R:
        """Handle one message; the result is the reply to a :meth:`Actor.call`.

        Raising crashes the actor (the caller of a ``call`` gets ``CallFailed``); its
        supervisor decides on the restart. Messages still in the mailbox wait for the
        next incarnation.
        """
        raise NotImplementedError


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


class _Call(Generic[M, R]):
    """A request of :meth:`Actor.call` travelling through the mailbox."""

    __slots__ = ("abandoned", "done", "error", "message", "result")

    def __init__(self, message: M) -> None:
        self.message = message
        self.done = anyio.Event()
        self.result: R | None = None
        self.error: BaseException | None = None
        self.abandoned = False

    def reply(self, result: R) -> None:
        self.result = result
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


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
        self._on_shed = on_shed
        self._mailbox: Mailbox[M | _Call[M, R]] = Mailbox(
            capacity, name=name, policy=policy, on_transition=on_transition, on_shed=self._shed
        )
        self._active = False
        self._since: float | None = None
        self._beat_at = -math.inf
        self._timeout_error: HandlerTimeout | None = None
        self._incarnations = self._handled = self._failed = 0
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
        )

    # -- messages --------------------------------------------------------------------

    async def cast(self, message: M, *, priority: int = 0) -> None:
        """Send ``message`` without waiting for it to be handled.

        Subject to the mailbox's pressure actions (see :meth:`Mailbox.send`): it may
        wait (throttle, full), be shed (``on_shed``), or be refused.

        Raises:
            PressureRejected: refused by the ``reject`` action.
            anyio.ClosedResourceError: the actor was closed.
        """
        await self._mailbox.send(message, priority)

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
            PressureRejected: the request was refused or shed by the mailbox's policy.
            anyio.ClosedResourceError: the actor was closed.
        """
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
        ``heartbeat_timeout``.
        """
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
        its mailbox drained.

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
            HandlerTimeout, or whatever the behaviour raised: the actor crashed.

        Cancellation: stops between or during messages; a ``call`` being handled fails
        with ``CallFailed``; buffered messages stay for the next incarnation.
        """
        if self._active:
            raise RuntimeError(f"actor {self._name!r} is already running")
        self._active = True
        self._since = None
        self._beat_at = -math.inf
        self._timeout_error = None
        try:
            self._incarnations += 1
            restored = None
            if self._store is not None:
                restored = await self._store.load_checkpoint(self._name)
            ctx = ActorContext(self, self._incarnations, restored)
            behaviour = self._factory()
            await behaviour.started(ctx)
            task_status.started()
            if self._handler_timeout is None and self._heartbeat_timeout is None:
                await self._loop(behaviour, ctx, None)
                return
            await self._watched(behaviour, ctx)
        finally:
            self._active = False

    async def _watched(self, behaviour: Behaviour[M, R], ctx: ActorContext) -> None:
        clock = fast_clock()
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:
                tg.start_soon(self._watchdog, scope, clock)
                try:
                    await self._loop(behaviour, ctx, clock)
                except Exception as exc:
                    # Raised after the task group, so the supervisor sees the handler's
                    # own exception rather than an exception group around it.
                    error = exc
            tg.cancel_scope.cancel()
        if self._timeout_error is not None:
            raise self._timeout_error
        if error is not None:
            raise error

    async def _watchdog(self, scope: anyio.CancelScope, clock: Callable[[], float]) -> None:
        beat = self._heartbeat_timeout
        limit = self._handler_timeout
        tick = math.inf if beat is None else beat / 8
        while True:
            now = clock()
            since = self._since
            if limit is not None and since is not None and now >= since + limit:
                self._timeout_error = HandlerTimeout(
                    f"actor {self._name!r}: handler ran past {limit} s",
                    actor=self._name,
                    timeout=limit,
                )
                scope.cancel()
                return
            if beat is not None and (since is None or now - since < tick):
                heartbeat()
                self._beat_at = now
            wake = now + tick
            if limit is not None:
                # A handler starting after now ends its time no earlier than now + limit.
                wake = min(wake, now + limit if since is None else since + limit)
            await anyio.sleep_until(wake)

    async def _loop(
        self,
        behaviour: Behaviour[M, R],
        ctx: ActorContext,
        clock: Callable[[], float] | None,
    ) -> None:
        mailbox = self._mailbox
        beat = self._heartbeat_timeout
        tick = math.inf if beat is None else beat / 8
        while True:
            await checkpoint()
            if len(mailbox):
                item = mailbox.receive_nowait()
            else:
                try:
                    item = await mailbox.receive()
                except anyio.EndOfStream:
                    return
            if clock is not None:
                self._since = now = clock()
                if now - self._beat_at >= tick:
                    heartbeat()
                    self._beat_at = now
            if isinstance(item, _Call):
                await self._handle_call(behaviour, ctx, item)
            else:
                try:
                    await behaviour.handle(ctx, item)
                except BaseException:
                    self._failed += 1
                    raise
                self._handled += 1
            self._since = None

    async def _handle_call(
        self, behaviour: Behaviour[M, R], ctx: ActorContext, request: _Call[M, R]
    ) -> None:
        if request.abandoned:
            self._skipped += 1
            return
        try:
            result = await behaviour.handle(ctx, request.message)
        except BaseException as exc:
            self._failed += 1
            cause: BaseException | None = exc if isinstance(exc, Exception) else None
            if cause is None and self._timeout_error is not None:
                cause = self._timeout_error
            if cause is not None:
                error = CallFailed(
                    f"actor {self._name!r} failed handling the call: {cause!r}",
                    actor=self._name,
                    error_type=type(cause).__qualname__,
                )
                error.__cause__ = cause
            else:
                error = CallFailed(
                    f"actor {self._name!r} was stopped while handling the call",
                    actor=self._name,
                    error_type=None,
                )
            request.fail(error)
            raise
        self._handled += 1
        request.reply(result)
