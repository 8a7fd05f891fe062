"""Stopping children, bounded: graceful within ``shutdown_timeout``, then killed, then abandoned.

A stop cancels the child's scope; cleanup inside :func:`~supervisors.shutdown_grace` keeps
running until the child's ``shutdown_timeout`` has passed, when it is cancelled too. The child
then gets ``kill_timeout`` more seconds to unwind. One still running after that is reported
(log, span, counter, ``SupervisorStatistics.abandoned``), its life ends with ``abandoned`` and
the supervisor stops waiting for it; its task goes on in the detached host (see ``_host``).

Stopping all children walks them in reverse start order (OTP's order), each one waited for
before the next is asked. Whatever cuts the walk short (the supervisor's ``stop_timeout``, or
its own parent's deadline cancelling the grace scope the stop runs in) still asks every child
not reached yet to stop, without grace, lets them unwind for a few scheduling rounds (no
time passes) and abandons those still running, so the stop returns by its deadline.
"""

from __future__ import annotations

import math

import anyio
import anyio.lowlevel

from supervisors._base import EngineBase
from supervisors._child import ChildState
from supervisors._down import DownReason
from supervisors._heartbeat import ChildContext
from supervisors._state import Child, reason_of

__all__ = ["StoppingEngine", "abandoned_children"]

# Children abandoned in this process: a process whose loop must end regardless asks this
# (an abandoned task keeps ``trio.run``/``asyncio.run`` from returning).
_abandoned_in_process = 0


def abandoned_children() -> int:
    """How many children supervisors of this process have abandoned since it started.

    A command that must exit checks this after its tree stopped: if it moved, the event
    loop would wait for the abandoned tasks, so it flushes and exits with ``os._exit``.
    """
    return _abandoned_in_process


# Scheduling rounds (no time passes) a child killed at a hard deadline gets to unwind before
# it is abandoned: enough for cleanup that only runs finally blocks and cancelled awaits.
_KILL_ROUNDS = 16


class StoppingEngine(EngineBase):
    """The stop half of a supervisor's engine."""

    async def _stop(self, child: Child, *, final: bool) -> None:
        """Stop a child's current incarnation (if any) and wait for it, bounded.

        ``final``: the child will not be started again, so its life ends here (``on_down``
        and monitors are told); otherwise a group restart starts it again.
        """
        ctx = child.current
        if ctx is not None:
            if not ctx.exited:
                if not ctx.stopping:
                    child.state = ChildState.STOPPING
                    ctx._request_stop(child.spec.shutdown_timeout, anyio.current_time())
                if not await self._wait_stopped(child, ctx):
                    self._abandon(child, ctx, final=final)
                    return
            elif final and not ctx.handled and not ctx.stopping:
                # It ended on its own just before being stopped, unhandled: say how.
                self._down_by_exit(child, ctx, reason_of(ctx))
            ctx.handled = True
            if child.current is ctx:
                child.current = None
        child.state = ChildState.STOPPED
        if final:
            self._down(child, DownReason.SHUTDOWN, None)

    async def _wait_stopped(self, child: Child, ctx: ChildContext) -> bool:
        """Wait for a stopping incarnation to end; False once it is past every deadline."""
        timeout = child.spec.shutdown_timeout
        if math.isinf(timeout):
            await ctx._wait_done()
            return True
        with anyio.move_on_after(timeout):
            await ctx._wait_done()
            return True
        # Its grace scopes were cancelled at the same deadline; give it time to unwind.
        ctx._kill(anyio.current_time())
        with anyio.move_on_after(self.kill_timeout):
            await ctx._wait_done()
            return True
        return ctx.exited

    def _abandon(self, child: Child, ctx: ChildContext, *, final: bool) -> None:
        ctx.handled = True
        if child.current is ctx:
            child.current = None
        child.state = ChildState.STOPPED
        self.abandoned_total += 1
        global _abandoned_in_process
        _abandoned_in_process += 1
        if child.spec.id not in self.abandoned_last:
            self.abandoned_last.append(child.spec.id)
        self.telemetry.abandoned(child.spec.id, child.spec.shutdown_timeout, self.kill_timeout)
        if final:
            self._down(child, DownReason.ABANDONED, None)

    async def _stop_all(self) -> None:
        """Stop every child in reverse start order, within ``stop_timeout`` in all."""
        order = list(reversed(self.children.values()))
        self.abandoned_last.clear()
        try:
            with anyio.move_on_after(self.stop_timeout):
                for child in order:
                    await self._stop(child, final=True)
        finally:
            # Runs even when this task is cancelled (a parent's deadline): no await may
            # block here, and the rounds below pass no time.
            await self._kill_rest(order)

    async def _kill_rest(self, order: list[Child]) -> None:
        pending: list[tuple[Child, ChildContext]] = []
        now = anyio.current_time()
        for child in order:
            ctx = child.current
            if ctx is not None and not ctx.exited:
                child.state = ChildState.STOPPING
                ctx._kill(now)
                pending.append((child, ctx))
        with anyio.CancelScope(shield=True):
            for _ in range(_KILL_ROUNDS):
                if all(ctx.exited for _, ctx in pending):
                    break
                await anyio.lowlevel.checkpoint()
        for child, ctx in pending:
            if ctx.exited:
                ctx.handled = True
                if child.current is ctx:
                    child.current = None
                child.state = ChildState.STOPPED
            else:
                self._abandon(child, ctx, final=True)
        for child in order:
            if child.current is None or child.current.exited:
                child.state = ChildState.STOPPED
            self._down(child, DownReason.SHUTDOWN, None)
