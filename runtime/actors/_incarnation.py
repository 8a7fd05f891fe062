"""One incarnation of an actor: the message loop, the watchdog, directives and end hooks.

:class:`_Incarnation` runs from the moment :meth:`Behaviour.started` returned until the
incarnation ends; the counters it moves live on the :class:`Actor`, which outlives it.
"""

from __future__ import annotations

import contextvars
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from runtime._loop import fast_clock
from runtime.actors._behaviour import (
    ActorContext,
    Behaviour,
    Directive,
    StopReason,
    _FunctionBehaviour,
)
from runtime.actors._errors import CallFailed, Escalated, HandlerTimeout
from runtime.actors._mailbox import fast_checkpoint
from supervisors import heartbeat, shutdown_grace

if TYPE_CHECKING:
    from runtime.actors._actor import Actor

M = TypeVar("M")
R = TypeVar("R")

_log = logging.getLogger("garrison.actors")

# The actor whose incarnation runs in this task (and the tasks it spawns): lets ``call``
# refuse a call to itself at once instead of waiting out its timeout.
_running: contextvars.ContextVar[Actor[Any, Any] | None] = contextvars.ContextVar(
    "garrison_running_actor", default=None
)


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


class _Incarnation(Generic[M, R]):
    __slots__ = ("actor", "beat_at", "behaviour", "ctx", "since", "timeout_error")

    def __init__(self, actor: Actor[M, R], behaviour: Behaviour[M, R], ctx: ActorContext) -> None:
        self.actor = actor
        self.behaviour = behaviour
        self.ctx = ctx
        self.since: float | None = None
        self.beat_at = -math.inf
        self.timeout_error: HandlerTimeout | None = None

    async def run(self) -> None:
        actor = self.actor
        reason = StopReason.SHUTDOWN
        error: Exception | None = None
        try:
            if actor._handler_timeout is None and actor._heartbeat_timeout is None:
                await self._loop(None)
            else:
                await self._watched()
            reason = StopReason.NORMAL
        except Exception as exc:
            reason, error = StopReason.CRASHED, exc
            raise
        finally:
            await self._end(reason, error)

    async def _end(self, reason: StopReason, error: Exception | None) -> None:
        behaviour, ctx = self.behaviour, self.ctx
        kind = type(behaviour)
        if kind.stopped is Behaviour.stopped and kind.pre_restart is Behaviour.pre_restart:
            # Nothing to run: spare a restart the two cancel scopes.
            return
        with shutdown_grace(), anyio.move_on_after(self.actor._shutdown_timeout):
            if error is not None and not isinstance(error, Escalated):
                try:
                    await behaviour.pre_restart(ctx, error)
                except Exception:
                    _log.exception("actor %s: pre_restart raised", ctx.actor)
            try:
                await behaviour.stopped(ctx, reason)
            except Exception:
                _log.exception("actor %s: stopped raised", ctx.actor)

    async def _watched(self) -> None:
        clock = fast_clock()
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:
                tg.start_soon(self._watchdog, scope, clock)
                try:
                    await self._loop(clock)
                except Exception as exc:
                    # Raised after the task group, so the supervisor sees the handler's
                    # own exception rather than an exception group around it.
                    error = exc
            tg.cancel_scope.cancel()
        if self.timeout_error is not None:
            raise self.timeout_error
        if error is not None:
            raise error

    async def _watchdog(self, scope: anyio.CancelScope, clock: Callable[[], float]) -> None:
        actor = self.actor
        beat = actor._heartbeat_timeout
        limit = actor._handler_timeout
        tick = math.inf if beat is None else beat / 8
        while True:
            now = clock()
            since = self.since
            if limit is not None and since is not None and now >= since + limit:
                self.timeout_error = HandlerTimeout(
                    f"actor {actor.name!r}: handler ran past {limit} s",
                    actor=actor.name,
                    timeout=limit,
                )
                scope.cancel()
                return
            if beat is not None and (since is None or now - since < tick):
                heartbeat()
                self.beat_at = now
            wake = now + tick
            if limit is not None:
                # A handler starting after now ends its time no earlier than now + limit.
                wake = min(wake, now + limit if since is None else since + limit)
            await anyio.sleep_until(wake)

    async def _loop(self, clock: Callable[[], float] | None) -> None:
        actor = self.actor
        mailbox = actor._mailbox
        behaviour, ctx = self.behaviour, self.ctx
        # A plain function's behaviour is called directly: one coroutine less per message.
        handle = behaviour._fn if isinstance(behaviour, _FunctionBehaviour) else behaviour.handle
        pause = fast_checkpoint()
        beat = actor._heartbeat_timeout
        tick = math.inf if beat is None else beat / 8
        while True:
            await pause()
            if len(mailbox):
                item = mailbox._pop()
            else:
                try:
                    item = await mailbox.receive()
                except anyio.EndOfStream:
                    return
            if clock is not None:
                self.since = now = clock()
                if now - self.beat_at >= tick:
                    heartbeat()
                    self.beat_at = now
            if isinstance(item, _Call):
                if await self._handle_call(handle, item):
                    return
            else:
                try:
                    await handle(ctx, item)
                except Exception as exc:
                    if self._decide(item, exc):
                        return
                except BaseException:
                    actor._failed += 1
                    raise
                else:
                    actor._handled += 1
            self.since = None

    async def _handle_call(
        self, handle: Callable[[ActorContext, M], Awaitable[R]], request: _Call[M, R]
    ) -> bool:
        """Handle a call; True when a ``STOP`` directive ends the incarnation."""
        actor = self.actor
        if request.abandoned:
            actor._skipped += 1
            return False
        try:
            result = await handle(self.ctx, request.message)
        except Exception as exc:
            request.fail(self._call_failed(exc))
            return self._decide(request.message, exc)
        except BaseException:
            actor._failed += 1
            cause = self.timeout_error
            if cause is not None:
                error = self._call_failed(cause)
            else:
                error = CallFailed(
                    f"actor {actor.name!r} was stopped while handling the call",
                    actor=actor.name,
                    error_type=None,
                )
            request.fail(error)
            raise
        actor._handled += 1
        request.reply(result)
        return False

    def _call_failed(self, cause: Exception) -> CallFailed:
        name = self.actor.name
        error = CallFailed(
            f"actor {name!r} failed handling the call: {cause!r}",
            actor=name,
            error_type=type(cause).__qualname__,
        )
        error.__cause__ = cause
        return error

    def _decide(self, message: M, exc: Exception) -> bool:
        """Act on ``on_error``'s directive for ``exc``: True to stop, False to resume;
        raises to crash (``RESTART``) or escalate."""
        actor = self.actor
        actor._failed += 1
        directive = self.behaviour.on_error(self.ctx, message, exc)
        if directive is Directive.RESUME:
            actor._resumed += 1
            return False
        if directive is Directive.STOP:
            return True
        if directive is Directive.ESCALATE:
            raise Escalated(
                f"actor {actor.name!r} escalated {exc!r}",
                actor=actor.name,
                error_type=type(exc).__qualname__,
            ) from exc
        raise exc
