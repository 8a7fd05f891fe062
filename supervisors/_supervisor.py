"""``Supervisor``: a fixed list of children restarted by strategy and restart intensity."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

import anyio
from anyio.abc import TaskStatus
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from policies import RestartPolicy
from supervisors._child import ChildInfo, ChildSpec, Restart
from supervisors._down import ChildMonitor
from supervisors._engine import Engine
from supervisors._records import (
    AutoShutdown,
    ChildCounts,
    RestartRecord,
    Strategy,
    SupervisorStatistics,
)
from supervisors._telemetry import Telemetry

__all__ = ["Supervisor"]


class Supervisor:
    """Runs a fixed list of children and restarts them as OTP's ``supervisor`` does.

    Children are started in list order, each only after the previous one called
    ``task_status.started()``. When a child ends on its own, its :class:`~supervisors.Restart`
    type says whether it is restarted; if so, ``strategy`` says which siblings are restarted
    with it (stopped in reverse start order, then started in order) and ``policy`` says
    whether this restart is one too many. Past the intensity the supervisor stops every child
    in reverse start order and ``run()`` raises :class:`~supervisors.SupervisorEscalation`,
    which a parent supervisor handles like any crashed child.

    Args:
        children: the child specs, in start order; ids must be unique.
        strategy: which children restart together (default ``ONE_FOR_ONE``).
        policy: restart intensity and optional backoff (default OTP's 1 restart in 5 s).
        name: used in telemetry, logs and errors.
        auto_shutdown: whether significant children ending stops the supervisor.
        history_cap: bound on :meth:`restart_history` (default 100).
        stop_timeout: bound, in seconds, on stopping all children when ``run()`` ends
            (default ``math.inf``: each child is still bounded by its own
            ``shutdown_timeout`` plus ``kill_timeout``). Past it every child still running
            is cancelled outright and abandoned.
        kill_timeout: seconds a child whose ``shutdown_timeout`` has run out (at once for
            ``shutdown_timeout=0``, OTP's ``brutal_kill``) gets to unwind after everything
            it runs was cancelled, before it is reported and abandoned (default 1.0).
        tracer_provider: OpenTelemetry tracer provider; the global one if ``None``.
        meter_provider: OpenTelemetry meter provider; the global one if ``None``.
        random: source for backoff jitter; a fresh ``random.Random()`` if ``None``.

    Raises:
        DuplicateChild: two specs share an id.
        ValidationFailed: ``history_cap < 1``, a negative ``stop_timeout`` or
            ``kill_timeout``, or a significant child with ``auto_shutdown=NEVER`` (OTP's
            ``bad_combination``).
    """

    def __init__(
        self,
        children: Iterable[ChildSpec],
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        policy: RestartPolicy | None = None,
        *,
        name: str = "supervisor",
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        history_cap: int = 100,
        stop_timeout: float = math.inf,
        kill_timeout: float = 1.0,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        random: random.Random | None = None,
    ) -> None:
        self._engine = Engine(
            name=name,
            strategy=strategy,
            policy=policy if policy is not None else RestartPolicy(),
            auto_shutdown=auto_shutdown,
            history_cap=history_cap,
            max_children=None,
            stop_timeout=stop_timeout,
            kill_timeout=kill_timeout,
            telemetry=Telemetry(name, tracer_provider, meter_provider),
            rng=random,
        )
        for spec in children:
            self._engine.add_spec(spec)

    @property
    def name(self) -> str:
        """The supervisor's name."""
        return self._engine.name

    @property
    def policy(self) -> RestartPolicy:
        """The restart policy in force."""
        return self._engine.policy

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start the children, supervise them until cancelled, then stop them.

        ``task_status.started()`` is called once every child is initialised, so
        ``await task_group.start(sup.run)`` returns with the whole tree up, and a supervisor
        can itself be a child (see :meth:`child_spec`).

        Returns normally only when ``auto_shutdown`` ends the supervisor.

        Raises:
            SupervisorEscalation: restart intensity exceeded (children already stopped; the
                failure that exceeded it is the ``__cause__``).
            ChildStartError: a child failed before ``started()`` during the initial start
                (the children started before it are stopped first).
            RuntimeError: ``run()`` is already active on this object.

        Cancellation: stops the children in reverse start order, each given its
        ``shutdown_timeout`` for cleanup inside :func:`~supervisors.shutdown_grace`, and
        only then lets the cancellation through. The stop itself is shielded and bounded:
        a child past its ``shutdown_timeout`` plus ``kill_timeout`` is abandoned (reported,
        and listed in ``statistics().abandoned``), the whole stop is cut at
        ``stop_timeout``, and, when this supervisor is itself a child, at the deadline its
        parent gives it; children not reached by then are still asked to stop. See
        ``docs/supervision.md``, "Bounded stop", for what abandoning a task means.
        """
        await self._engine.run(task_status, dynamic=False)

    async def start_child(self, spec: ChildSpec) -> None:
        """Add a child at the end of the start order and start it (OTP ``start_child``).

        Returns once it called ``task_status.started()``. It is then supervised like the
        children given at construction (restarted by strategy, stopped in reverse order).

        Raises:
            SupervisorNotRunning: ``run()`` is not active or the supervisor is stopping.
            DuplicateChild: a child with ``spec.id`` is listed (running or not).
            ValidationFailed: ``spec`` is significant and ``auto_shutdown`` is ``NEVER``.
            ChildStartError: the child ended before ``started()`` (cause chained); a
                permanent or transient child stays listed, stopped, as in OTP.

        Cancellation: if the caller is cancelled while the child initialises, the child
        still starts and stays supervised.
        """
        await self._engine.start_child(spec)

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child (bounded as a stop is) and keep its spec listed, stopped.

        A temporary child's spec is deleted, as in OTP. Stopping a listed child that is
        not running does nothing.

        Raises:
            SupervisorNotRunning: ``run()`` is not active or the supervisor is stopping.
            ChildNotFound: no child with that id is listed.
        """
        await self._engine.terminate_child(child_id)

    async def restart_child(self, child_id: str) -> None:
        """Start a listed child that is not running (terminated, or ended and not restarted).

        Raises:
            SupervisorNotRunning: ``run()`` is not active or the supervisor is stopping.
            ChildNotFound: no child with that id is listed.
            ChildRunning: it is running.
            ChildStartError: it ended before ``started()``; it stays listed, stopped.
        """
        await self._engine.restart_child(child_id)

    async def delete_child(self, child_id: str) -> None:
        """Remove a listed child that is not running.

        Raises:
            SupervisorNotRunning: ``run()`` is not active or the supervisor is stopping.
            ChildNotFound: no child with that id is listed.
            ChildRunning: it is running (terminate it first).
        """
        await self._engine.delete_child(child_id)

    def count_children(self) -> ChildCounts:
        """How many children are listed and how many of them run (OTP ``count_children``)."""
        return self._engine.count_children()

    def child_spec(
        self,
        id: str | None = None,
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown_timeout: float = math.inf,
        significant: bool = False,
    ) -> ChildSpec:
        """A spec that runs this supervisor as a child of another one.

        ``shutdown_timeout`` defaults to infinity (as OTP does for supervisor children): a
        supervisor being stopped first stops its own children, each bounded by its own
        timeout.
        """
        return ChildSpec(
            id=id if id is not None else self.name,
            start=self.run,
            restart=restart,
            shutdown_timeout=shutdown_timeout,
            significant=significant,
        )

    def monitor(self, child_id: str) -> ChildMonitor:
        """Watch the current life of child ``child_id`` (OTP ``erlang:monitor``).

        The returned :class:`~supervisors.ChildMonitor`'s ``await wait()`` gives the
        :class:`~supervisors.ChildDown` that ends the life: the child ended and will not be
        started again (returned and not restarted, crashed and not restarted, stopped by
        this supervisor, abandoned past its stop deadline). A crash followed by a restart
        does not end it. If the child is not running now, the monitor has already fired:
        with the child's last ``ChildDown`` if it ran before, else with reason ``noproc``
        (an unknown id too, as OTP does for a dead process).

        Must be called from inside the event loop. Never blocks; monitors hold no
        supervisor resources (drop one to demonitor).
        """
        return self._engine.monitor(child_id)

    def which_children(self) -> list[ChildInfo]:
        """A snapshot of every child: id, state, restart type, restarts, last failure."""
        return self._engine.which_children()

    def restart_history(self) -> list[RestartRecord]:
        """The most recent restarts, oldest first, at most ``history_cap`` of them."""
        return self._engine.restart_history()

    def statistics(self) -> SupervisorStatistics:
        """A frozen snapshot of counters and sizes."""
        return self._engine.statistics()
