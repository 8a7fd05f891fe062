"""A supervisor's state, its introspection and death watch, and one child incarnation's task.

Each child incarnation runs in its own task of the children's task group (see ``_host``),
inside a shielded cancel scope that only the supervisor cancels (or the heartbeat deadline
expires). An incarnation never lets an exception escape into the task group: it records how
it ended and queues its child for the control task (``_engine``), which decides, one exit at
a time, whether to restart, which siblings to restart with it, or to give up.

The common case takes a shortcut: a one-for-one restart that the intensity allows is decided
synchronously in the ended incarnation's own task, which then runs the replacement itself (no
hop through the control task, no new task). Being synchronous, that decision cannot interleave
with the control task's.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from policies import RestartPolicy, ValidationFailed
from supervisors._child import ChildInfo, ChildSpec, ChildState, Failure, Restart, RestartReason
from supervisors._down import ChildDown, ChildMonitor, DownReason, _Watch, noproc_monitor
from supervisors._errors import DuplicateChild
from supervisors._heartbeat import ChildContext, _current
from supervisors._records import AutoShutdown, RestartRecord, Strategy, SupervisorStatistics
from supervisors._state import MESSAGE_LIMIT, Child, cause_of, down_reason, needs_restart, reason_of
from supervisors._telemetry import Telemetry, logger

__all__ = ["EngineBase"]

# Restarts done in place whose telemetry waits for the control loop; past this many they
# are recorded at once, so the backlog is bounded even if the loop is busy.
_REPORT_BACKLOG = 256

_Report = tuple[str, RestartReason, Exception | None, int, int]


class EngineBase:
    """State of one supervisor, shared by the stop, admin and control-loop layers."""

    def __init__(
        self,
        *,
        name: str,
        strategy: Strategy,
        policy: RestartPolicy,
        auto_shutdown: AutoShutdown,
        history_cap: int,
        max_children: int | None,
        stop_timeout: float,
        kill_timeout: float,
        telemetry: Telemetry,
        rng: random.Random | None,
    ) -> None:
        if history_cap < 1:
            raise ValidationFailed(
                f"history_cap must be >= 1, got {history_cap}", field="history_cap"
            )
        if max_children is not None and max_children < 1:
            raise ValidationFailed(
                f"max_children must be >= 1, got {max_children}", field="max_children"
            )
        if not stop_timeout >= 0.0:
            raise ValidationFailed(
                f"stop_timeout must be >= 0, got {stop_timeout}", field="stop_timeout"
            )
        if not 0.0 <= kill_timeout < math.inf:
            raise ValidationFailed(
                f"kill_timeout must be finite and >= 0, got {kill_timeout}", field="kill_timeout"
            )
        self.name = name
        self.strategy = strategy
        self.policy = policy
        self.auto_shutdown = auto_shutdown
        self.history_cap = history_cap
        self.max_children = max_children
        self.stop_timeout = stop_timeout
        self.kill_timeout = kill_timeout
        self.telemetry = telemetry
        self._rng = rng if rng is not None else random.Random()
        # Insertion order is start order: reverse it to stop.
        self.children: dict[str, Child] = {}
        # Each child is queued at most once (``Child.queued``), so this never exceeds the
        # number of children.
        self._queue: deque[Child] = deque()
        self._wake: anyio.Event | None = None
        self._reports: deque[_Report] = deque()
        # Only the newest ``policy.window`` restart times can decide the intensity.
        self._recent: deque[float] = deque(maxlen=policy.window)
        self._history: deque[RestartRecord] = deque(maxlen=history_cap)
        self._tg: TaskGroup | None = None
        self._lock: anyio.Lock | None = None
        # The last target of an in-place group restart still starting: lock holders wait
        # for it, so they never see a half-started group.
        self._group_gate: ChildContext | None = None
        self._closing = False
        # A BaseException (KeyboardInterrupt, SystemExit) a child let out: run() re-raises it.
        self._fatal: BaseException | None = None
        # Child tasks not yet returned, this run: 0 lets run() wait for the host to close.
        self._live_tasks = 0
        self.restarts_total = 0
        self.hangs_total = 0
        self.escalations_total = 0
        self.abandoned_total = 0
        # Ids abandoned by the latest stop; bounded by the number of children.
        self.abandoned_last: list[str] = []

    def add_spec(self, spec: ChildSpec) -> None:
        if spec.id in self.children:
            raise DuplicateChild(f"supervisor {self.name!r} already has a child {spec.id!r}")
        self.check_spec(spec)
        self.children[spec.id] = Child(spec)

    def check_spec(self, spec: ChildSpec) -> None:
        """Refuse specs this supervisor cannot honour (OTP's ``bad_combination``)."""
        if spec.significant and self.auto_shutdown is AutoShutdown.NEVER:
            raise ValidationFailed(
                f"child {spec.id!r} is significant but supervisor {self.name!r} has "
                "auto_shutdown=never (OTP rejects the combination)",
                field="significant",
            )

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
            abandoned_total=self.abandoned_total,
            abandoned=tuple(self.abandoned_last),
        )

    # -- death watch -----------------------------------------------------------------------

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

    def _down(self, child: Child, reason: DownReason, error: BaseException | None) -> None:
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

    def _down_by_exit(self, child: Child, ctx: ChildContext, reason: RestartReason) -> None:
        error = None if reason is RestartReason.EXIT else cause_of(child.spec, ctx, reason)
        self._down(child, down_reason(reason), error)

    # -- one incarnation -------------------------------------------------------------------

    def _new_context(self, child: Child, now: float) -> ChildContext:
        ctx = ChildContext(child.spec.id, child.spec.heartbeat_timeout, now)
        ctx._on_started = self._mark_running
        child.current = ctx
        child.state = ChildState.STARTING
        return ctx

    def _mark_running(self, ctx: ChildContext) -> None:
        child = self.children.get(ctx.child_id)
        if child is not None and child.current is ctx:
            child.state = ChildState.RUNNING

    def _spawn(self, child: Child, delay: float, gate: ChildContext | None = None) -> ChildContext:
        """Spawn an incarnation; it waits out ``delay`` (state ``restarting``) first.

        ``gate``: the incarnation starts only once that one (the previous child of a
        group restart) has called ``started()``; if it ended instead, this one does not
        start at all and is left for the control loop, which restarts the group again.
        """
        assert self._tg is not None
        child.alive = True
        ctx = self._new_context(child, anyio.current_time())
        if delay > 0.0:
            child.state = ChildState.RESTARTING
        self._spawn_ctx(child, ctx, delay, gate)
        return ctx

    def _spawn_ctx(
        self, child: Child, ctx: ChildContext, delay: float, gate: ChildContext | None
    ) -> None:
        assert self._tg is not None
        self._live_tasks += 1
        self._tg.start_soon(self._incarnation, child, ctx, delay, gate, name=child.spec.id)

    async def _await_group(self) -> None:
        """Wait, holding the lock, until an in-place group restart has its group up."""
        gate = self._group_gate
        if gate is not None:
            if not gate._settled.is_set():
                await gate._settled.wait()
            if self._group_gate is gate:
                self._group_gate = None

    if TYPE_CHECKING:
        # Provided by the group layer (``_group``), which every engine includes.

        def _group_handoff(
            self, child: Child, ctx: ChildContext
        ) -> tuple[ChildContext, ChildContext | None] | None: ...

        async def _restart_group_in_place(
            self, child: Child, ctx: ChildContext
        ) -> tuple[ChildContext, ChildContext | None] | None: ...

    async def _start(self, child: Child, delay: float) -> bool:
        """Spawn an incarnation and wait until it is initialised (True) or has ended (False)."""
        ctx = self._spawn(child, delay)
        await ctx._settled.wait()
        return ctx.is_started

    async def _incarnation(
        self, child: Child, ctx: ChildContext, delay: float, gate: ChildContext | None
    ) -> None:
        """Run the child; restart it in this same task while that needs no one else."""
        first = True
        try:
            while True:
                _current.set(ctx)
                try:
                    ran = await self._run_child(child, ctx, delay, first, gate)
                except BaseException as exc:
                    # Not an Exception and not a cancellation (the child runs shielded):
                    # KeyboardInterrupt, SystemExit. The control task re-raises it.
                    ctx._mark_exited()
                    self._fatal = self._fatal or exc
                    if self._wake is not None:
                        self._wake.set()
                    return
                ctx._mark_exited()
                if ctx._group is not None:
                    handoff = self._group_handoff(child, ctx)
                    if handoff is not None:
                        # Stopped by a group restart: this task runs the replacement.
                        ctx, gate = handoff
                        delay = 0.0
                        first = True
                        continue
                if ctx.stopping or child.current is not ctx:
                    return
                if not ran:
                    # Its gate failed to start: handling that failure restarts this one.
                    ctx.handled = True
                    child.state = ChildState.STOPPED
                    return
                restart = self._restart_in_place(child, ctx)
                if restart is None and self.strategy is not Strategy.ONE_FOR_ONE:
                    group = await self._restart_group_in_place(child, ctx)
                    if group is not None:
                        ctx, gate = group
                        delay = 0.0
                        first = True
                        continue
                    if ctx.handled:
                        return
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
                gate = None
        finally:
            self._live_tasks -= 1

    async def _run_child(
        self,
        child: Child,
        ctx: ChildContext,
        delay: float,
        first: bool,
        gate: ChildContext | None,
    ) -> bool:
        """Run one incarnation; False if it never ran because its gate failed to start."""
        spec = child.spec
        try:
            with ctx._scope:
                if not ctx.stopping:
                    if gate is not None:
                        if not gate._settled.is_set():
                            await gate._settled.wait()
                        if not gate.is_started:
                            return False
                    if delay > 0.0:
                        child.state = ChildState.RESTARTING
                        await anyio.sleep(delay)
                        if child.current is ctx:
                            child.state = ChildState.STARTING
                    elif not first:
                        # A child that crashes before its first checkpoint must not keep
                        # the event loop to itself while it crash-loops.
                        await anyio.lowlevel.checkpoint()
                    if (
                        (not first or ctx is self._group_gate)
                        and self._reports
                        and self._wake is not None
                    ):
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
        return True

    def _restart_in_place(
        self, child: Child, ctx: ChildContext
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
        reason = reason_of(ctx)
        if not needs_restart(child.spec.restart, reason):
            return None
        now = anyio.current_time()
        if self.policy.intensity_exceeded(self._recent, now):
            return None
        ctx.handled = True
        error = ctx.error
        ctx.error = None  # break the traceback -> frame -> ctx cycle
        self._note_end(child, reason, error, now)
        delay = self._commit_restart(child, ctx, reason, error, now, restarted=1)
        child.restarts += 1
        report = (child.spec.id, reason, error, child.restarts, time.time_ns())
        if len(self._reports) < _REPORT_BACKLOG:
            self._reports.append(report)
        else:
            self.telemetry.restart(*report)
        return self._new_context(child, now), delay

    def _targets(self, child: Child) -> list[Child]:
        if self.strategy is Strategy.ONE_FOR_ONE:
            return [child]
        children = list(self.children.values())
        if self.strategy is Strategy.ONE_FOR_ALL:
            return children
        return children[children.index(child) :]

    # -- decisions shared by both restart paths --------------------------------------------

    def _note_end(
        self, child: Child, reason: RestartReason, error: Exception | None, now: float
    ) -> None:
        spec = child.spec
        if reason is not RestartReason.EXIT or spec.restart is Restart.PERMANENT:
            child.last_failure = Failure(
                reason=reason,
                at=now,
                error_type=None if error is None else type(error).__qualname__,
                message=None if error is None else str(error)[:MESSAGE_LIMIT],
            )
        if reason is RestartReason.HANG:
            self.hangs_total += 1
            self.telemetry.hang(spec.id, spec.heartbeat_timeout)

    def _commit_restart(
        self,
        child: Child,
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
        backoff = policy.backoff
        if backoff is None:
            return 0.0
        rand = self._rng.random() if backoff.jitter else 0.0
        rand_up = self._rng.random() if backoff.random_factor else 0.0
        return policy.restart_delay(attempt, rand, rand_up)
