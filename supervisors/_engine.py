"""The supervision loop shared by every supervisor kind.

One control task (the caller of ``run()``) owns all decisions; each child incarnation runs in
its own task of the supervisor's task group, inside a shielded cancel scope that only the
supervisor cancels (or the heartbeat deadline expires). An incarnation never lets an
``Exception`` escape into the task group: it records how it ended and queues its child for the
control task, which decides, one exit at a time, whether to restart, which siblings to restart
with it, or to give up.

The common case takes a shortcut: a one-for-one restart that the intensity allows is decided
synchronously in the ended incarnation's own task, which then runs the replacement itself (no
hop through the control task, no new task). Being synchronous, that decision cannot interleave
with the control task's; everything else (group restarts, escalation, failed starts, children
that are not restarted) goes through the control task.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus

from policies import RestartPolicy
from supervisors._child import (
    ChildInfo,
    ChildSpec,
    ChildState,
    Failure,
    Restart,
    RestartReason,
)
from supervisors._down import ChildDown, ChildMonitor, DownReason, _Watch, noproc_monitor
from supervisors._errors import (
    ChildExited,
    ChildHung,
    ChildNotFound,
    ChildStartError,
    DuplicateChild,
    SupervisorEscalation,
    SupervisorNotRunning,
    TooManyChildren,
)
from supervisors._heartbeat import ChildContext, _current, shutdown_grace
from supervisors._records import AutoShutdown, RestartRecord, Strategy, SupervisorStatistics
from supervisors._telemetry import Telemetry, logger

__all__ = ["Engine"]

_MESSAGE_LIMIT = 200
# Restarts done in place whose telemetry waits for the control loop; past this many they
# are recorded at once, so the backlog is bounded even if the loop is busy.
_REPORT_BACKLOG = 256

_Report = tuple[str, RestartReason, Exception | None, int, int]


class _Child:
    """The supervisor's bookkeeping for one child id (fixed size, reused across restarts)."""

    __slots__ = (
        "alive",
        "attempt",
        "current",
        "last_down",
        "last_failure",
        "queued",
        "restarts",
        "spec",
        "state",
        "watch",
    )

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.state = ChildState.STOPPED
        self.restarts = 0
        self.attempt = 0
        self.last_failure: Failure | None = None
        self.current: ChildContext | None = None
        self.queued = False
        # A life spans restarts: it begins with a start that is not a restart and ends with
        # exactly one ChildDown (see _down), which ``watch`` hands to the monitors.
        self.alive = False
        self.watch: _Watch | None = None
        self.last_down: ChildDown | None = None


class _Stop:
    """Why the control loop ended: an escalation to raise, or (``error is None``) a clean
    auto-shutdown."""

    __slots__ = ("cause", "error")

    def __init__(self, error: Exception | None = None, cause: BaseException | None = None):
        self.error = error
        self.cause = cause


def _needs_restart(restart: Restart, reason: RestartReason) -> bool:
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TEMPORARY:
        return False
    # A child supervisor that gave up exits with ``shutdown`` in OTP, which is a normal
    # exit for a transient child.
    return reason is not RestartReason.EXIT and reason is not RestartReason.ESCALATION


_DOWN_REASONS = {
    RestartReason.EXIT: DownReason.NORMAL,
    RestartReason.EXCEPTION: DownReason.CRASHED,
    RestartReason.HANG: DownReason.CRASHED,
    RestartReason.ESCALATION: DownReason.SHUTDOWN,
}


def _reason(ctx: ChildContext) -> RestartReason:
    # The scope is only ever cancelled by our stop (excluded by the caller) or by the
    # heartbeat deadline, whatever the child did with the resulting Cancelled.
    if ctx._scope.cancel_called:
        return RestartReason.HANG
    if isinstance(ctx.error, SupervisorEscalation):
        return RestartReason.ESCALATION
    if ctx.error is not None:
        return RestartReason.EXCEPTION
    return RestartReason.EXIT


def _cause(spec: ChildSpec, ctx: ChildContext, reason: RestartReason) -> BaseException:
    if ctx.error is not None and reason is not RestartReason.HANG:
        return ctx.error
    if reason is RestartReason.HANG:
        return ChildHung(f"child {spec.id!r} sent no heartbeat within {spec.heartbeat_timeout:g}s")
    if ctx.is_started:
        return ChildExited(f"permanent child {spec.id!r} returned")
    return ChildExited(f"child {spec.id!r} returned before calling task_status.started()")


class Engine:
    """State and control loop of one supervisor; wrapped by the public supervisor classes."""

    def __init__(
        self,
        *,
        name: str,
        strategy: Strategy,
        policy: RestartPolicy,
        auto_shutdown: AutoShutdown,
        history_cap: int,
        max_children: int | None,
        telemetry: Telemetry,
        rng: random.Random | None,
    ) -> None:
        if history_cap < 1:
            raise ValueError(f"history_cap must be >= 1, got {history_cap}")
        if max_children is not None and max_children < 1:
            raise ValueError(f"max_children must be >= 1, got {max_children}")
        self.name = name
        self.strategy = strategy
        self.policy = policy
        self.auto_shutdown = auto_shutdown
        self.history_cap = history_cap
        self.max_children = max_children
        self.telemetry = telemetry
        self._rng = rng if rng is not None else random.Random()
        # Insertion order is start order: reverse it to stop.
        self.children: dict[str, _Child] = {}
        # Each child is queued at most once (``_Child.queued``), so this never exceeds the
        # number of children.
        self._queue: deque[_Child] = deque()
        self._wake: anyio.Event | None = None
        self._reports: deque[_Report] = deque()
        # Only the newest ``policy.window`` restart times can decide the intensity.
        self._recent: deque[float] = deque(maxlen=policy.window)
        self._history: deque[RestartRecord] = deque(maxlen=history_cap)
        self._tg: TaskGroup | None = None
        self._lock: anyio.Lock | None = None
        self._closing = False
        self.restarts_total = 0
        self.hangs_total = 0
        self.escalations_total = 0

    # -- configuration ---------------------------------------------------------------------

    def add_spec(self, spec: ChildSpec) -> None:
        if spec.id in self.children:
            raise DuplicateChild(f"supervisor {self.name!r} already has a child {spec.id!r}")
        self.children[spec.id] = _Child(spec)

    # -- introspection ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._tg is not None and not self._closing

    def which_children(self) -> list[ChildInfo]:
        return [
            ChildInfo(
                id=c.spec.id,
                state=c.state,
                restart=c.spec.restart,
                restarts=c.restarts,
                last_failure=c.last_failure,
            )
            for c in self.children.values()
        ]

    def restart_history(self) -> list[RestartRecord]:
        return list(self._history)

    def monitor(self, child_id: str) -> ChildMonitor:
        child = self.children.get(child_id)
        if child is None:
            return noproc_monitor(child_id)
        if not child.alive:
            if child.last_down is None:
                return noproc_monitor(child_id)
            watch = _Watch()
            watch.fire(child.last_down)
            return ChildMonitor(child_id, watch)
        if child.watch is None:
            child.watch = _Watch()
        return ChildMonitor(child_id, child.watch)

    def _down(self, child: _Child, reason: DownReason, error: BaseException | None) -> None:
        """End the child's life: tell its ``on_down`` hook and its monitors, once."""
        if not child.alive:
            return
        down = ChildDown(child.spec.id, reason, error)
        child.alive = False
        child.last_down = down
        hook = child.spec.on_down
        if hook is not None:
            try:
                hook(down)
            except Exception:
                logger.exception(
                    "supervisor %s: on_down hook of child %s raised",
                    self.name,
                    child.spec.id,
                    extra={"supervisor": self.name, "child_id": child.spec.id},
                )
        watch = child.watch
        if watch is not None:
            child.watch = None
            watch.fire(down)

    def _down_by_exit(self, child: _Child, ctx: ChildContext, reason: RestartReason) -> None:
        error = None if reason is RestartReason.EXIT else _cause(child.spec, ctx, reason)
        self._down(child, _DOWN_REASONS[reason], error)

    def statistics(self) -> SupervisorStatistics:
        return SupervisorStatistics(
            name=self.name,
            strategy=self.strategy,
            running=self._tg is not None,
            children=len(self.children),
            children_running=sum(
                1 for c in self.children.values() if c.state is ChildState.RUNNING
            ),
            max_children=self.max_children,
            restarts_total=self.restarts_total,
            hangs_total=self.hangs_total,
            escalations_total=self.escalations_total,
            history_size=len(self._history),
            history_cap=self.history_cap,
        )

    # -- run -------------------------------------------------------------------------------

    async def run(self, task_status: TaskStatus[None], *, dynamic: bool) -> None:
        if self._tg is not None:
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        stop: _Stop | None = None
        # A supervisor restarted by its parent starts with a fresh intensity window, as a
        # new OTP supervisor process would.
        self._recent.clear()
        # Only dynamic supervisors have callers besides the control loop that change the
        # children; a static one skips the lock (and its extra scheduling point per restart).
        self._lock = anyio.Lock() if dynamic else None
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
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
            self._tg = None
            self._lock = None
            self._closing = False
            self._wake = None
            self._queue.clear()
            for child in self.children.values():
                child.queued = False
            if dynamic:
                self.children.clear()
        if stop is not None and stop.error is not None:
            raise stop.error from stop.cause

    async def _start_initial(self) -> _Stop | None:
        for child in list(self.children.values()):
            if not await self._start(child, 0.0):
                ctx = child.current
                assert ctx is not None
                ctx.handled = True
                child.current = None
                cause = _cause(child.spec, ctx, _reason(ctx))
                self._down(child, DownReason.CRASHED, cause)
                return _Stop(ChildStartError(self.name, child.spec.id), cause)
        return None

    def _flush_reports(self) -> None:
        while self._reports:
            self.telemetry.restart(*self._reports.popleft())

    async def _supervise(self) -> _Stop:
        while True:
            while not self._queue:
                self._flush_reports()
                self._wake = anyio.Event()
                await self._wake.wait()
            self._wake = None
            self._flush_reports()
            child = self._queue.popleft()
            child.queued = False
            if self._lock is None:
                stop = await self._process(child)
            else:
                async with self._lock:
                    stop = await self._process(child)
            if stop is not None:
                return stop

    async def _process(self, child: _Child) -> _Stop | None:
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

    # -- one incarnation -------------------------------------------------------------------

    def _new_context(self, child: _Child, now: float) -> ChildContext:
        ctx = ChildContext(child.spec.id, child.spec.heartbeat_timeout, now)
        ctx._on_started = self._mark_running
        child.current = ctx
        child.state = ChildState.STARTING
        return ctx

    def _mark_running(self, ctx: ChildContext) -> None:
        child = self.children.get(ctx.child_id)
        if child is not None and child.current is ctx:
            child.state = ChildState.RUNNING

    async def _start(self, child: _Child, delay: float) -> bool:
        """Spawn an incarnation and wait until it is initialised (True) or has ended (False)."""
        assert self._tg is not None
        child.alive = True
        ctx = self._new_context(child, anyio.current_time())
        self._tg.start_soon(self._incarnation, child, ctx, delay, name=child.spec.id)
        await ctx._settled.wait()
        return ctx.is_started

    async def _incarnation(self, child: _Child, ctx: ChildContext, delay: float) -> None:
        """Run the child; restart it in this same task while that needs no one else."""
        first = True
        while True:
            _current.set(ctx)
            try:
                await self._run_child(child.spec, ctx, delay, first)
            finally:
                ctx._mark_exited()
            if ctx.stopping or child.current is not ctx:
                return
            restart = self._restart_in_place(child, ctx)
            if restart is None:
                child.state = ChildState.STOPPED
                if not child.queued:
                    child.queued = True
                    self._queue.append(child)
                if self._wake is not None:
                    self._wake.set()
                return
            ctx, delay = restart
            first = False

    async def _run_child(
        self, spec: ChildSpec, ctx: ChildContext, delay: float, first: bool
    ) -> None:
        try:
            with ctx._scope:
                if not ctx.stopping:
                    if delay > 0.0:
                        await anyio.sleep(delay)
                    elif not first:
                        # A child that crashes before its first checkpoint must not keep
                        # the event loop to itself while it crash-loops.
                        await anyio.lowlevel.checkpoint()
                    if not first and self._reports and self._wake is not None:
                        # The loop records this restart once the child has run up to its
                        # first checkpoint, normally past task_status.started().
                        self._wake.set()
                    if spec.heartbeat_timeout is not None:
                        ctx._scope.deadline = anyio.current_time() + spec.heartbeat_timeout
                    await spec.start(task_status=ctx)
        except Exception as exc:
            # Outside the scope, so exception groups that also held our cancellation are
            # caught once the scope has taken its Cancelled out of them.
            ctx.error = exc

    def _restart_in_place(
        self, child: _Child, ctx: ChildContext
    ) -> tuple[ChildContext, float] | None:
        """Decide a one-for-one restart synchronously, in the ended incarnation's task.

        Only the plain case qualifies: one-for-one, the child is to be restarted and the
        intensity allows it. Anything that needs siblings stopped, the supervisor stopped
        or its ``run()`` to raise is left to the control loop (returns None). Being
        synchronous, the decision cannot interleave with the loop's own.
        """
        if (
            self.strategy is not Strategy.ONE_FOR_ONE
            or self._tg is None
            or self._closing
            # A failed start belongs to whoever is waiting for it (initial start,
            # start_child or a loop-driven restart).
            or not ctx.is_started
        ):
            return None
        reason = _reason(ctx)
        if not _needs_restart(child.spec.restart, reason):
            return None
        now = anyio.current_time()
        if self.policy.intensity_exceeded(self._recent, now):
            return None
        ctx.handled = True
        error = ctx.error
        ctx.error = None  # see _process: break the traceback -> frame -> ctx cycle
        self._note_end(child, reason, error, now)
        delay = self._commit_restart(child, ctx, reason, error, now, restarted=1)
        child.restarts += 1
        report = (child.spec.id, reason, error, child.restarts, time.time_ns())
        if len(self._reports) < _REPORT_BACKLOG:
            self._reports.append(report)
        else:
            self.telemetry.restart(*report)
        return self._new_context(child, now), delay

    async def _stop(self, child: _Child, *, final: bool) -> None:
        """Stop a child's current incarnation (if any) and wait for it to end.

        ``final``: the child will not be started again, so its life ends here (``on_down``
        and monitors are told); otherwise a group restart starts it again.
        """
        ctx = child.current
        if ctx is not None:
            if not ctx.exited:
                if not ctx.stopping:
                    child.state = ChildState.STOPPING
                    ctx._request_stop(child.spec.shutdown_timeout, anyio.current_time())
                await self._wait_stopped(child, ctx)
            elif final and not ctx.handled and not ctx.stopping:
                # It ended on its own just before being stopped, unhandled: say how.
                self._down_by_exit(child, ctx, _reason(ctx))
            ctx.handled = True
            if child.current is ctx:
                child.current = None
        child.state = ChildState.STOPPED
        if final:
            self._down(child, DownReason.SHUTDOWN, None)

    async def _wait_stopped(self, child: _Child, ctx: ChildContext) -> None:
        timeout = child.spec.shutdown_timeout
        if not math.isinf(timeout):
            with anyio.move_on_after(timeout):
                await ctx._wait_done()
                return
            # Only a child shielding its cleanup itself (not via shutdown_grace) gets here;
            # nothing can cancel through its shield, so say so and keep waiting.
            logger.warning(
                "supervisor %s: child %s still running %gs after being stopped",
                self.name,
                child.spec.id,
                timeout,
                extra={"supervisor": self.name, "child_id": child.spec.id},
            )
        await ctx._wait_done()

    async def _stop_all(self) -> None:
        for child in reversed(list(self.children.values())):
            await self._stop(child, final=True)

    # -- decisions -------------------------------------------------------------------------

    def _note_end(
        self, child: _Child, reason: RestartReason, error: Exception | None, now: float
    ) -> None:
        spec = child.spec
        if reason is not RestartReason.EXIT or spec.restart is Restart.PERMANENT:
            child.last_failure = Failure(
                reason=reason,
                at=now,
                error_type=None if error is None else type(error).__qualname__,
                message=None if error is None else str(error)[:_MESSAGE_LIMIT],
            )
        if reason is RestartReason.HANG:
            self.hangs_total += 1
            self.telemetry.hang(spec.id, spec.heartbeat_timeout)

    def _commit_restart(
        self,
        child: _Child,
        ctx: ChildContext,
        reason: RestartReason,
        error: Exception | None,
        now: float,
        restarted: int,
    ) -> float:
        """Count a restart the intensity allowed; returns the child's backoff delay."""
        policy = self.policy
        self._recent.append(now)
        self.restarts_total += 1
        attempt = policy.next_attempt(child.attempt, now - ctx.spawned_at)
        child.attempt = attempt + 1
        self._history.append(
            RestartRecord(
                child_id=child.spec.id,
                reason=reason,
                at=now,
                error_type=None if error is None else type(error).__qualname__,
                restarted=restarted,
            )
        )
        if policy.backoff is None:
            return 0.0
        return policy.restart_delay(attempt, self._rng.random())

    async def _handle_exit(self, child: _Child, ctx: ChildContext) -> _Stop | None:
        ctx.handled = True
        spec = child.spec
        reason = _reason(ctx)
        error = ctx.error
        now = anyio.current_time()
        self._note_end(child, reason, error, now)

        if not _needs_restart(spec.restart, reason):
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
            for target in restartable:
                target.restarts += 1
                if not await self._start(target, delay if target is child else 0.0):
                    # Its end is queued; handling it restarts the rest of this group too.
                    break
        finally:
            # Reported once the replacement runs, so recording never delays recovery; the
            # span still starts at the decision and so measures the restart.
            self.telemetry.restart(spec.id, reason, error, child.restarts, began)
        return None

    def _targets(self, child: _Child) -> list[_Child]:
        if self.strategy is Strategy.ONE_FOR_ONE:
            return [child]
        children = list(self.children.values())
        if self.strategy is Strategy.ONE_FOR_ALL:
            return children
        return children[children.index(child) :]

    def _ended(self, child: _Child) -> _Stop | None:
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
        return _Stop()

    def _escalate(self, child: _Child, ctx: ChildContext, reason: RestartReason) -> _Stop:
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
        return _Stop(error, _cause(child.spec, ctx, reason))

    # -- dynamic children ------------------------------------------------------------------

    def _require_running(self) -> None:
        if self._tg is None or self._closing:
            raise SupervisorNotRunning(f"supervisor {self.name!r} is not running")

    async def start_child(self, spec: ChildSpec) -> None:
        self._require_running()
        assert self._lock is not None
        async with self._lock:
            self._require_running()
            if spec.id in self.children:
                raise DuplicateChild(f"supervisor {self.name!r} already has a child {spec.id!r}")
            if self.max_children is not None and len(self.children) >= self.max_children:
                raise TooManyChildren(
                    f"supervisor {self.name!r} already supervises max_children="
                    f"{self.max_children} children"
                )
            child = _Child(spec)
            self.children[spec.id] = child
            if await self._start(child, 0.0):
                return
            ctx = child.current
            if ctx is not None and not ctx.handled:
                ctx.handled = True
                child.current = None
                if self.children.get(spec.id) is child:
                    del self.children[spec.id]
                cause = _cause(spec, ctx, _reason(ctx))
                self._down(child, DownReason.CRASHED, cause)
                raise ChildStartError(self.name, spec.id) from cause
            # Stopped by a concurrent shutdown while it was starting.
            raise SupervisorNotRunning(f"supervisor {self.name!r} is shutting down")

    async def terminate_child(self, child_id: str) -> None:
        self._require_running()
        assert self._lock is not None
        async with self._lock:
            child = self.children.pop(child_id, None)
            if child is None:
                raise ChildNotFound(f"supervisor {self.name!r} has no child {child_id!r}")
            await self._stop(child, final=True)
