"""``Actor``: a supervised task with a bounded mailbox, ``cast``, ``call``, death watch."""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar, cast

import anyio
from anyio.abc import TaskStatus

from policies import PressureLevel, PressurePolicy
from runtime._errors import PressureRejected
from runtime.actors._behaviour import ActorContext, Behaviour, CheckpointStore
from runtime.actors._errors import ActorGone, CallingSelf, CallTimeout, TooManyWatchers
from runtime.actors._incarnation import _Call, _Incarnation, _running
from runtime.actors._mailbox import Mailbox
from runtime.actors._pressure import TransitionHook
from runtime.actors._registry import Registry
from runtime.actors._statistics import ActorStatistics
from runtime.actors._watch import Watch
from supervisors import ChildDown, ChildSpec, DownReason, Restart, current_child

__all__ = ["Actor"]

M = TypeVar("M")
R = TypeVar("R")


class Actor(Generic[M, R]):
    """A task with a bounded mailbox, run (and restarted) by a supervisor.

    Args:
        name: the actor's name: its child id, its mailbox's channel name, its
            checkpoint key and its registry name.
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
        registry: a :class:`Registry` the actor registers its name in while alive.
        max_watches: the most live :meth:`watch` handles at once (default 1,024).

    The mailbox belongs to the actor object, not to an incarnation: it outlives restarts,
    and messages sent while the actor is restarting wait for the next incarnation. The
    message being handled when an incarnation crashes is lost (a ``call`` caller gets
    :class:`CallFailed`); durable work is acknowledged through the store, not here.

    Death watch: when the actor goes down for good (its supervisor will not restart it,
    see :meth:`child_spec`; or, unsupervised, its :meth:`run` ended), queued ``call``
    requests fail at once with :class:`ActorGone`, and so do new casts and calls and
    senders waiting for room, until it is started again. Queued casts stay buffered
    for that next start. :meth:`watch` and :meth:`wait_down` tell who wants to know.

    Raises:
        ValueError: ``capacity < 1``, ``max_watches < 1`` or a non-positive timeout.
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
        registry: Registry | None = None,
        max_watches: int = 1024,
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
        if max_watches < 1:
            raise ValueError(f"max_watches must be >= 1, got {max_watches}")
        self._name = name
        self._factory = behaviour
        self._store = store
        self._call_timeout = call_timeout
        self._handler_timeout = handler_timeout
        self._heartbeat_timeout = heartbeat_timeout
        self._shutdown_timeout = 5.0
        self._on_shed = on_shed
        self._registry = registry
        self._max_watches = max_watches
        self._mailbox: Mailbox[M | _Call[M, R]] = Mailbox(
            capacity, name=name, policy=policy, on_transition=on_transition, on_shed=self._shed
        )
        self._active = False
        self._down: ChildDown | None = None
        self._watches: dict[Watch, None] = {}
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

    @property
    def down(self) -> ChildDown | None:
        """How the actor went down for good, or ``None`` while it lives (or will be
        restarted, or was never started)."""
        return self._down

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
            down=None if self._down is None else self._down.reason.value,
            watches=len(self._watches),
        )

    # -- messages --------------------------------------------------------------------

    def cast(self, message: M, *, priority: int = 0) -> Coroutine[Any, Any, None]:
        """Send ``message`` without waiting for it to be handled: ``await actor.cast(m)``.

        Subject to the mailbox's pressure actions (see :meth:`Mailbox.send`): it may
        wait (throttle, full), be shed (``on_shed``), or be refused.

        Raises:
            PressureRejected: refused by the ``reject`` action.
            ActorGone: the actor is down for good (also while waiting for room).
            anyio.ClosedResourceError: the actor was closed.
        """
        # The mailbox's own coroutine, not one wrapped in another: a frame less per cast.
        return self._mailbox.send(message, priority)

    def cast_nowait(self, message: M, *, priority: int = 0) -> None:
        """:meth:`cast` without waiting.

        Raises:
            anyio.WouldBlock: the mailbox is full, or throttled with no token now.
            PressureRejected: refused by the ``reject`` action.
            ActorGone: the actor is down for good.
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
            ActorGone: the actor is down for good, now or before it got to the request
                (at once, not after the timeout).
            CallingSelf: called from the actor's own incarnation: its task, or a task
                started from it (which inherits the running actor's context), where the
                call could only wait for the loop it blocks. Nothing is sent.
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

    # -- death watch -----------------------------------------------------------------

    def watch(self, on_down: Callable[[ChildDown], object] | None = None) -> Watch:
        """Watch for the actor going down for good (Akka ``watch``, OTP ``monitor``).

        The returned :class:`Watch` fires once: at the actor's next down, or at once if
        it is down now. ``on_down``, if given, is then called synchronously with the
        :class:`~supervisors.ChildDown` (it must not block; e.g. ``cast_nowait`` a
        ``Terminated`` message to a watching actor); an exception from it is logged.

        Raises:
            TooManyWatchers: ``max_watches`` watches are live (not fired, not cancelled).
        """
        watch = Watch(self, on_down)
        if self._down is not None:
            watch._fire(self._down)
            return watch
        if len(self._watches) >= self._max_watches:
            raise TooManyWatchers(
                f"actor {self._name!r} has {self._max_watches} live watches",
                actor=self._name,
                max_watchers=self._max_watches,
            )
        self._watches[watch] = None
        return watch

    async def wait_down(self) -> ChildDown:
        """Wait until the actor is down for good and return how; at once if it is now.

        Raises:
            TooManyWatchers: as :meth:`watch`.

        Cancellation: unbounded by itself (bound it with your own scope); cancelling
        releases the watch.
        """
        watch = self.watch()
        try:
            return await watch.wait()
        finally:
            watch.cancel()

    def _went_down(self, down: ChildDown) -> None:
        """The actor's life ended for good: refuse messages, fail queued callers, tell
        the registry and the watchers. Synchronous: it runs in ``ChildSpec.on_down``."""
        self._down = down
        mailbox = self._mailbox
        mailbox._refuse(self._gone)
        for request in mailbox._remove_if(lambda item: isinstance(item, _Call)):
            request = cast(_Call[M, R], request)
            if request.abandoned:
                self._skipped += 1
            else:
                request.fail(self._gone())
        if self._registry is not None:
            self._registry.unregister(self)
        watches, self._watches = self._watches, {}
        for watch in watches:
            watch._fire(down)

    def _gone(self) -> ActorGone:
        down = self._down
        reason = DownReason.NOPROC.value if down is None else down.reason.value
        message = f"actor {self._name!r} is down ({reason})"
        return ActorGone(message, actor=self._name, reason=reason)

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
        ``heartbeat_timeout``, bounds the behaviour's end hooks by ``shutdown_timeout``,
        and wires the death watch (``on_down``): when the supervisor will not restart
        the actor, it is down (see :class:`Actor`).
        """
        self._shutdown_timeout = shutdown_timeout
        return ChildSpec(
            id=self._name if id is None else id,
            start=self.run,
            restart=restart,
            shutdown_timeout=shutdown_timeout,
            significant=significant,
            heartbeat_timeout=self._heartbeat_timeout,
            on_down=self._went_down,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run one incarnation: load the checkpoint, start the behaviour, handle messages.

        Calls ``task_status.started()`` once the behaviour's ``started`` returned, so it
        fits ``task_group.start`` and supervisors. Returns when the actor is closed and
        its mailbox drained, or when a handler's error is decided ``STOP``. A down actor
        accepts messages again from here on; with a registry, the name is registered
        before ``started``.

        With a ``handler_timeout`` or a ``heartbeat_timeout``, a watchdog task runs beside
        the message loop, which itself pays only a clock read per message for it. The
        watchdog cancels a handler that runs past ``handler_timeout`` exactly at that
        deadline. Heartbeats are sent every eighth of ``heartbeat_timeout`` while the
        actor is idle or its handler started less than that long ago (and by the loop at
        a message's start when the last one is older), so a handler is reported hung once
        it has run between 7/8 and 9/8 of ``heartbeat_timeout``: one that finishes within
        7/8 of it never is, one stuck for 9/8 of it always is.

        Unsupervised (not run by a supervisor), the end of ``run`` is the actor's down,
        with reason ``normal``, ``crashed`` or ``shutdown`` (cancelled).

        Raises:
            RuntimeError: another incarnation of this actor is running.
            NameTaken, RegistryFull: the name could not be registered.
            HandlerTimeout, :class:`Escalated`, or whatever the behaviour raised: the
            actor crashed.

        Cancellation: stops between or during messages; a ``call`` being handled fails
        with ``CallFailed``; buffered messages stay for the next incarnation.
        """
        if self._active:
            raise RuntimeError(f"actor {self._name!r} is already running")
        self._active = True
        token = _running.set(self)
        reason = DownReason.SHUTDOWN
        error: Exception | None = None
        try:
            self._incarnations += 1
            if self._down is not None:
                self._down = None
                self._mailbox._accept()
            if self._registry is not None:
                self._registry.register(self)
            restored = None
            if self._store is not None:
                restored = await self._store.load_checkpoint(self._name)
            ctx = ActorContext(self, self._incarnations, restored)
            behaviour = self._factory()
            await behaviour.started(ctx)
            task_status.started()
            await _Incarnation(self, behaviour, ctx).run()
            reason = DownReason.NORMAL
        except Exception as exc:
            reason, error = DownReason.CRASHED, exc
            raise
        finally:
            self._active = False
            _running.reset(token)
            if current_child() is None:
                self._went_down(ChildDown(self._name, reason, error))
