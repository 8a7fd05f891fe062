"""The running incarnation of a child as seen from inside it: start signal, heartbeat, grace.

A supervisor passes a :class:`ChildContext` to the child as its ``task_status`` and also makes
it the child task's current context (a context variable), so :func:`heartbeat` and
:func:`shutdown_grace` work anywhere in the child, including tasks it spawns.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio

__all__ = ["ChildContext", "current_child", "heartbeat", "shutdown_grace"]

_current: contextvars.ContextVar[ChildContext | None] = contextvars.ContextVar(
    "garrison_supervisors_child", default=None
)


class ChildContext:
    """One incarnation of a supervised child.

    It is what the child receives as ``task_status`` (so ``task_status.started()`` marks it
    running) and what :func:`current_child` returns inside it. Not constructed by users.
    """

    __slots__ = (
        "_done",
        "_grace",
        "_group",
        "_hard_deadline",
        "_heartbeat_timeout",
        "_on_started",
        "_scope",
        "_settled",
        "_started",
        "_stopping",
        "child_id",
        "error",
        "exited",
        "handled",
        "spawned_at",
    )

    def __init__(self, child_id: str, heartbeat_timeout: float | None, spawned_at: float) -> None:
        self.child_id = child_id
        self.spawned_at = spawned_at
        self._heartbeat_timeout = heartbeat_timeout
        # Shielded: only the supervisor's own stop (or the heartbeat deadline) reaches the
        # child, so an outer cancellation cannot stop siblings all at once, out of order.
        self._scope = anyio.CancelScope(shield=True)
        self._settled = anyio.Event()
        # Created only when someone waits for the end (a stop): most incarnations end
        # unobserved, and an Event is not free.
        self._done: anyio.Event | None = None
        self._started = False
        self._stopping = False
        self._hard_deadline = math.inf
        self._grace: list[anyio.CancelScope] = []
        # The in-place group restart stopping this incarnation (see ``_group``), if any.
        self._group: object | None = None
        self.exited = False
        self.handled = False
        self.error: Exception | None = None
        self._on_started: Callable[[ChildContext], None] | None = None

    def started(self, value: object = None) -> None:
        """Mark the child initialised; its supervisor's start proceeds to the next child.

        Raises:
            RuntimeError: if called twice.
        """
        if self._started:
            raise RuntimeError("task_status.started() called twice")
        self._started = True
        self._settled.set()
        if self._on_started is not None:
            self._on_started(self)

    @property
    def is_started(self) -> bool:
        """Whether :meth:`started` was called."""
        return self._started

    @property
    def stopping(self) -> bool:
        """Whether the supervisor has asked this incarnation to stop."""
        return self._stopping

    def heartbeat(self) -> None:
        """Push the hang deadline ``heartbeat_timeout`` seconds ahead; no-op without one.

        Must be called from inside the child's event loop (it reads ``anyio.current_time()``).
        """
        if self._heartbeat_timeout is not None and not self._stopping:
            self._scope.deadline = anyio.current_time() + self._heartbeat_timeout

    @contextmanager
    def shutdown_grace(self) -> Iterator[anyio.CancelScope]:
        """A shielded scope for cleanup that must not be cut short by the supervisor's stop.

        Inside it, the supervisor's stop does not cancel the child; it is cancelled instead
        once the child's ``shutdown_timeout`` has passed since the stop began. Use it around
        awaits in ``finally`` blocks, or around a unit of work that should be finished rather
        than abandoned.
        """
        scope = anyio.CancelScope(shield=True, deadline=self._hard_deadline)
        self._grace.append(scope)
        try:
            with scope:
                yield scope
        finally:
            self._grace.remove(scope)

    async def _wait_done(self) -> None:
        if not self.exited:
            if self._done is None:
                self._done = anyio.Event()
            await self._done.wait()

    def _mark_exited(self) -> None:
        self.exited = True
        self._settled.set()
        if self._done is not None:
            self._done.set()

    def _kill(self, now: float) -> None:
        """Cancel the incarnation and every grace scope now, whatever time was left."""
        self._stopping = True
        self._hard_deadline = min(self._hard_deadline, now)
        for scope in self._grace:
            scope.cancel()
        self._scope.cancel()

    def _request_stop(self, timeout: float, now: float) -> None:
        self._stopping = True
        self._hard_deadline = now + timeout
        for scope in self._grace:
            scope.deadline = self._hard_deadline
        self._scope.cancel()


def current_child() -> ChildContext | None:
    """The :class:`ChildContext` of the supervised child this code runs in, or ``None``."""
    return _current.get()


def heartbeat() -> None:
    """Tell the supervisor this child is alive (see ``ChildSpec.heartbeat_timeout``).

    A no-op outside a supervised child or for a child without a heartbeat deadline, so code
    can call it unconditionally. Never blocks and is not a checkpoint.
    """
    ctx = _current.get()
    if ctx is not None:
        ctx.heartbeat()


@contextmanager
def shutdown_grace() -> Iterator[anyio.CancelScope]:
    """Shield cleanup from the supervisor's stop for at most the child's ``shutdown_timeout``.

    Inside a supervised child this is :meth:`ChildContext.shutdown_grace`; elsewhere it is a
    plain shielded scope with no deadline (the caller is the top of the tree and waits for
    the cleanup to finish). Cancellation: the scope ignores outer cancellation until its
    deadline, then cancels its body.
    """
    ctx = _current.get()
    if ctx is None:
        with anyio.CancelScope(shield=True) as scope:
            yield scope
    else:
        with ctx.shutdown_grace() as scope:
            yield scope
