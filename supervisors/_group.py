"""Group restarts (one-for-all, rest-for-one) run from the crashed child's own task.

The control-loop path costs about ten scheduler rounds for a group of three (a hop to the
control task, two per sibling stopped, a new task per target, a hop per start). Here the
crashed child's task decides the restart synchronously, as the one-for-one shortcut does,
and the stops form a chain: each sibling, once its task has ended, asks the next one (in
reverse start order) to stop and then runs its own replacement in its same task, gated on
the previous target's start. A group of three comes back in about four rounds, with no new
task and no timer per sibling.

Bounds are kept by the crashed child's task (the coordinator): it waits for the chain with
the stopping sibling's deadline, and once a sibling is past it, takes the rest over with the
ordinary bounded stop (kill, then abandon), spawning new tasks for the replacements. Only the
plain case qualifies (see ``_restart_group_in_place``); anything else is left to the control
loop. The coordinator holds the supervisor's lock from the decision until every sibling is
stopped; lock holders then wait for the group's last start (``_await_group``), so the admin
API never sees a half-done group restart.
"""

from __future__ import annotations

import math
import time

import anyio
import anyio.lowlevel

from supervisors._child import ChildState, Restart, RestartReason
from supervisors._heartbeat import ChildContext
from supervisors._state import Child, needs_restart, reason_of
from supervisors._stopping import StoppingEngine

__all__ = ["GroupEngine"]

_Start = tuple[ChildContext, ChildContext]


class _Plan:
    """One in-place group restart: siblings to stop, in order, and each target's start."""

    __slots__ = ("barrier", "dead", "index", "requested_at", "starts", "stops")

    def __init__(self, stops: list[tuple[Child, ChildContext]], barrier: ChildContext):
        self.stops = stops
        # Index in ``stops`` of the sibling being stopped; len(stops) once all are.
        self.index = -1
        self.requested_at = 0.0
        # Called started() once every sibling is stopped: the first target's gate.
        self.barrier = barrier
        self.starts: dict[str, _Start] = {}
        # Taken over by the coordinator, or the supervisor is closing: no more handoffs.
        self.dead = False


class GroupEngine(StoppingEngine):
    """The in-place group restart layer of a supervisor's engine."""

    def _advance(self, plan: _Plan) -> None:
        """Ask the next sibling to stop, or open the barrier once none is left."""
        while True:
            plan.index += 1
            if plan.index >= len(plan.stops):
                plan.barrier.started()
                return
            sibling, sctx = plan.stops[plan.index]
            if not sctx.exited:
                now = anyio.current_time()
                plan.requested_at = now
                sibling.state = ChildState.STOPPING
                sctx._request_stop(sibling.spec.shutdown_timeout, now)
                return
            # It ended on its own meanwhile (queued for the control loop, which will find
            # it handled): absorbed by the group restart, replaced in a new task.
            sctx.handled = True
            nctx, gate = plan.starts[sibling.spec.id]
            self._install(sibling, nctx)
            self._spawn_ctx(sibling, nctx, 0.0, gate)

    def _install(self, child: Child, ctx: ChildContext) -> None:
        child.current = ctx
        child.state = ChildState.STARTING

    def _group_handoff(
        self, child: Child, ctx: ChildContext
    ) -> tuple[ChildContext, ChildContext | None] | None:
        plan = ctx._group
        assert isinstance(plan, _Plan)
        ctx._group = None
        if (
            plan.dead
            or child.current is not ctx
            or plan.index >= len(plan.stops)
            or plan.stops[plan.index][1] is not ctx
        ):
            # Taken over, replaced, or it ended on its own before being asked to stop
            # (``_advance`` replaces it when its turn comes).
            return None
        if self._closing:
            plan.dead = True
            plan.barrier._mark_exited()
            return None
        ctx.handled = True
        nctx, gate = plan.starts[child.spec.id]
        self._install(child, nctx)
        self._advance(plan)
        return nctx, gate

    async def _restart_group_in_place(
        self, child: Child, ctx: ChildContext
    ) -> tuple[ChildContext, ChildContext | None] | None:
        """Decide and run a group restart in the crashed child's task, if it is plain.

        Plain: the intensity allows it, no backoff, the supervisor idle (lock free, nothing
        queued), and every sibling running, started, not temporary, with a finite
        ``shutdown_timeout`` (the coordinator's wait must be bounded). Returns the crashed
        child's replacement and its gate, or None: if ``ctx.handled`` is still False the
        control loop takes the exit, else the restart was cut short by the supervisor's stop.
        """
        lock = self._lock
        if (
            self._tg is None
            or self._closing
            or lock is None
            or self._queue
            or self._fatal is not None
            or self.policy.backoff is not None
            or not ctx.is_started
        ):
            return None
        reason = reason_of(ctx)
        if not needs_restart(child.spec.restart, reason):
            return None
        targets = self._targets(child)
        siblings = [t for t in reversed(targets) if t is not child]
        for sibling in siblings:
            sctx = sibling.current
            if (
                sctx is None
                or sctx.exited
                or sctx.stopping
                or not sctx.is_started
                or sctx._group is not None
                or sibling.spec.restart is Restart.TEMPORARY
                or not math.isfinite(sibling.spec.shutdown_timeout)
            ):
                return None
        now = anyio.current_time()
        if self.policy.intensity_exceeded(self._recent, now):
            return None
        try:
            lock.acquire_nowait()
        except anyio.WouldBlock:
            return None
        try:
            return await self._run_group(child, ctx, reason, now, targets, siblings)
        finally:
            lock.release()

    async def _run_group(
        self,
        child: Child,
        ctx: ChildContext,
        reason: RestartReason,
        now: float,
        targets: list[Child],
        siblings: list[Child],
    ) -> tuple[ChildContext, ChildContext | None] | None:
        ctx.handled = True
        error = ctx.error
        ctx.error = None  # break the traceback -> frame -> ctx cycle
        self._note_end(child, reason, error, now)
        self._commit_restart(child, ctx, reason, error, now, restarted=len(targets))
        child.state = ChildState.STOPPED
        began = time.time_ns()
        barrier = ChildContext(child.spec.id, None, now)
        plan = _Plan([(s, s.current) for s in siblings if s.current is not None], barrier)
        gate = barrier
        for target in targets:
            target.restarts += 1
            nctx = ChildContext(target.spec.id, target.spec.heartbeat_timeout, now)
            nctx._on_started = self._mark_running
            plan.starts[target.spec.id] = (nctx, gate)
            gate = nctx
        self._group_gate = gate
        self._reports.append((child.spec.id, reason, error, child.restarts, began))
        for _, sctx in plan.stops:
            sctx._group = plan
        self._advance(plan)
        if not plan.stops:
            # Nothing to stop, so no scheduling point so far: a child that crashes at once
            # must not keep the event loop to itself.
            await anyio.lowlevel.checkpoint()
        await self._await_stops(plan)
        nctx, gate = plan.starts[child.spec.id]
        if not barrier.is_started or self._closing:
            # The supervisor is stopping: its stop takes it from here.
            nctx._mark_exited()
            return None
        self._install(child, nctx)
        return nctx, gate

    async def _await_stops(self, plan: _Plan) -> None:
        """Wait for the chain, bounded by each sibling's deadline; take over past one."""
        barrier = plan.barrier
        while True:
            if barrier._settled.is_set():
                return
            sibling, sctx = plan.stops[plan.index]
            with anyio.CancelScope(deadline=plan.requested_at + sibling.spec.shutdown_timeout):
                await barrier._settled.wait()
            if barrier._settled.is_set():
                return
            if plan.stops[plan.index][1] is sctx and not sctx.exited:
                break
        # The sibling being stopped is past its grace: kill it, then stop the rest the
        # ordinary way; each replacement gets a new task.
        plan.dead = True
        first = plan.index
        sctx._kill(anyio.current_time())
        with anyio.move_on_after(self.kill_timeout):
            await sctx._wait_done()
        if sctx.exited:
            sctx.handled = True
            sibling.current = None
            sibling.state = ChildState.STOPPED
        else:
            self._abandon(sibling, sctx, final=False)
        for later, _ in plan.stops[first + 1 :]:
            if self._closing:
                break
            await self._stop(later, final=False)
        if self._closing:
            barrier._mark_exited()
            return
        for later, _ in plan.stops[first:]:
            nctx, gate = plan.starts[later.spec.id]
            self._install(later, nctx)
            self._spawn_ctx(later, nctx, 0.0, gate)
        barrier.started()
