"""The supervision control loop shared by every supervisor kind.

One control task (the caller of ``run()``) owns every decision the in-place shortcut (see
``_base``) leaves to it: group restarts, escalation, failed starts, children that are not
restarted, auto-shutdown. It handles one exit at a time, holding the supervisor's lock so
the admin API (``_admin``) never sees a half-done restart; it never holds the lock while a
child waits out its restart backoff.
"""

from __future__ import annotations

import time

import anyio
from anyio.abc import TaskStatus

from supervisors._admin import AdminEngine
from supervisors._child import Restart, RestartReason
from supervisors._down import DownReason
from supervisors._errors import ChildStartError, SupervisorEscalation
from supervisors._heartbeat import ChildContext, shutdown_grace
from supervisors._host import ChildHost
from supervisors._records import AutoShutdown
from supervisors._state import Child, Stop, cause_of, needs_restart, reason_of
from supervisors._telemetry import logger

__all__ = ["Engine"]


class Engine(AdminEngine):
    """State and control loop of one supervisor; wrapped by the public supervisor classes."""

    async def run(self, task_status: TaskStatus[None], *, dynamic: bool) -> None:
        if self._tg is not None:
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        stop: Stop | None = None
        # A supervisor restarted by its parent starts with a fresh intensity window, as a
        # new OTP supervisor process would.
        self._recent.clear()
        self._lock = anyio.Lock()
        self._fatal = None
        self._live_tasks = 0
        host = ChildHost()
        try:
            self._tg = await host.open(f"supervisor {self.name} children")
            try:
                stop = await self._start_initial()
                if stop is None:
                    task_status.started()
                    stop = await self._supervise()
            finally:
                self._closing = True
                # Our own stop is bounded by our parent's shutdown_timeout for us.
                with shutdown_grace():
                    await self._stop_all()
                self._flush_reports()
        finally:
            host.close()
            if self._live_tasks == 0:
                # Every child task has ended: leave as structured as a task group would.
                with anyio.CancelScope(shield=True):
                    await host.wait_closed()
            self._tg = None
            self._lock = None
            self._closing = False
            self._wake = None
            self._queue.clear()
            for child in self.children.values():
                child.queued = False
                child.current = None
            if dynamic:
                self.children.clear()
        if self._fatal is not None:
            fatal, self._fatal = self._fatal, None
            raise fatal
        if stop is not None and stop.error is not None:
            raise stop.error from stop.cause

    async def _start_initial(self) -> Stop | None:
        for child in list(self.children.values()):
            if not await self._start(child, 0.0):
                if self._fatal is not None:
                    return Stop()
                ctx = child.current
                assert ctx is not None
                ctx.handled = True
                child.current = None
                cause = cause_of(child.spec, ctx, reason_of(ctx))
                self._down(child, DownReason.CRASHED, cause)
                return Stop(ChildStartError(self.name, child.spec.id), cause)
        return None

    def _flush_reports(self) -> None:
        while self._reports:
            self.telemetry.restart(*self._reports.popleft())

    async def _supervise(self) -> Stop:
        assert self._lock is not None
        lock = self._lock
        while True:
            while not self._queue:
                if self._fatal is not None:
                    return Stop()
                self._flush_reports()
                self._wake = anyio.Event()
                await self._wake.wait()
            self._wake = None
            self._flush_reports()
            child = self._queue.popleft()
            child.queued = False
            # Uncontended (the usual case) the lock is taken without a scheduling point.
            try:
                lock.acquire_nowait()
            except anyio.WouldBlock:
                await lock.acquire()
            try:
                await self._await_group()
                stop = await self._process(child)
            finally:
                lock.release()
            if stop is not None:
                return stop

    async def _process(self, child: Child) -> Stop | None:
        ctx = child.current
        # Stale: stopped or replaced since it was queued, or still running.
        if ctx is None or not ctx.exited or ctx.handled or ctx.stopping:
            return None
        try:
            return await self._handle_exit(child, ctx)
        finally:
            # The exception's traceback holds the incarnation's frame, which holds ctx:
            # drop the reference so the cycle does not wait for the cyclic GC.
            ctx.error = None

    async def _handle_exit(self, child: Child, ctx: ChildContext) -> Stop | None:
        ctx.handled = True
        spec = child.spec
        reason = reason_of(ctx)
        error = ctx.error
        now = anyio.current_time()
        self._note_end(child, reason, error, now)

        if not needs_restart(spec.restart, reason):
            child.current = None
            self._down_by_exit(child, ctx, reason)
            return self._ended(child)
        if self.policy.intensity_exceeded(self._recent, now):
            return self._escalate(child, ctx, reason)

        targets = self._targets(child)
        restartable = [t for t in targets if t is child or t.spec.restart is not Restart.TEMPORARY]
        delay = self._commit_restart(child, ctx, reason, error, now, len(restartable))
        began = time.time_ns()
        try:
            for sibling in reversed(targets):
                if sibling is not child:
                    temporary = sibling.spec.restart is Restart.TEMPORARY
                    await self._stop(sibling, final=temporary)
                    if temporary and self.children.get(sibling.spec.id) is sibling:
                        # OTP deletes temporary children a group restart stopped.
                        del self.children[sibling.spec.id]
            # Every target is spawned at once, each gated on the previous one's start, so
            # the group comes up in start order without a hop through this task per child.
            gate = None
            for target in restartable:
                target.restarts += 1
                gate = self._spawn(target, delay if target is child else 0.0, gate)
            if gate is not None and delay == 0.0:
                # Held under the lock until the group is up (or a start failed, which is
                # queued and restarts the group again), so admin calls never see it half
                # started; never for a backoff, which must not hold the lock.
                await gate._settled.wait()
        finally:
            # Reported once the replacement runs, so recording never delays recovery; the
            # span still starts at the decision and so measures the restart.
            self.telemetry.restart(spec.id, reason, error, child.restarts, began)
        return None

    def _ended(self, child: Child) -> Stop | None:
        """A child ended for good; returns a clean stop if that shuts the supervisor down."""
        if self.max_children is not None or child.spec.restart is Restart.TEMPORARY:
            # Dynamic children that will not run again are forgotten, so the table stays
            # bounded by max_children rather than by every id ever started; OTP deletes
            # a temporary child's spec whenever it ends.
            del self.children[child.spec.id]
        if not child.spec.significant or self.auto_shutdown is AutoShutdown.NEVER:
            return None
        if self.auto_shutdown is AutoShutdown.ALL_SIGNIFICANT and any(
            c.current is not None for c in self.children.values() if c.spec.significant
        ):
            return None
        logger.info(
            "supervisor %s shutting down: significant child %s ended",
            self.name,
            child.spec.id,
            extra={"supervisor": self.name, "child_id": child.spec.id},
        )
        return Stop()

    def _escalate(self, child: Child, ctx: ChildContext, reason: RestartReason) -> Stop:
        # Called before ctx.error is dropped, so the cause below is the real exception.
        child.current = None
        self._down_by_exit(child, ctx, reason)
        self.escalations_total += 1
        error = SupervisorEscalation(
            supervisor=self.name,
            child_id=child.spec.id,
            reason=reason.value,
            restarts=self.policy.max_restarts + 1,
            max_restarts=self.policy.max_restarts,
            period_s=self.policy.period_s,
        )
        self.telemetry.escalation(child.spec.id, reason, ctx.error, str(error))
        return Stop(error, cause_of(child.spec, ctx, reason))
