"""``DynamicSupervisor``: children added and removed while it runs, up to a bound."""

from __future__ import annotations

import math
import random

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

__all__ = ["DynamicSupervisor"]


class DynamicSupervisor:
    """Supervises children started at run time (Elixir's ``DynamicSupervisor``).

    It starts with no children; :meth:`start_child` adds one and :meth:`terminate_child`
    stops and removes one. Restarts are one-for-one with the same restart intensity as
    :class:`~supervisors.Supervisor`. A child that ends and is not restarted (temporary,
    transient that returned, or terminated) is forgotten, so the table never holds more than
    ``max_children`` entries. When ``run()`` ends, all children are forgotten.

    Args:
        policy: restart intensity and optional backoff (default OTP's 1 restart in 5 s).
        max_children: bound on concurrently supervised children (default 1000).
        name: used in telemetry, logs and errors.
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
        random: source for backoff jitter.

    Raises:
        ValidationFailed: ``max_children < 1``, ``history_cap < 1``, or a negative
            ``stop_timeout`` or ``kill_timeout``.
    """

    def __init__(
        self,
        policy: RestartPolicy | None = None,
        *,
        max_children: int = 1000,
        name: str = "dynamic_supervisor",
        history_cap: int = 100,
        stop_timeout: float = math.inf,
        kill_timeout: float = 1.0,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        random: random.Random | None = None,
    ) -> None:
        self._engine = Engine(
            name=name,
            strategy=Strategy.ONE_FOR_ONE,
            policy=policy if policy is not None else RestartPolicy(),
            auto_shutdown=AutoShutdown.NEVER,
            history_cap=history_cap,
            max_children=max_children,
            stop_timeout=stop_timeout,
            kill_timeout=kill_timeout,
            telemetry=Telemetry(name, tracer_provider, meter_provider),
            rng=random,
        )

    @property
    def name(self) -> str:
        """The supervisor's name."""
        return self._engine.name

    @property
    def max_children(self) -> int:
        """The bound on concurrently supervised children."""
        assert self._engine.max_children is not None
        return self._engine.max_children

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Supervise until cancelled; ``started()`` is called at once (no initial children).

        Raises:
            SupervisorEscalation: restart intensity exceeded (children already stopped).
            RuntimeError: ``run()`` is already active on this object.

        Cancellation: as :meth:`Supervisor.run`: children are stopped in reverse start
        order, each within its ``shutdown_timeout`` plus ``kill_timeout``, all within
        ``stop_timeout``; children still running past that are abandoned.
        """
        await self._engine.run(task_status, dynamic=True)

    async def start_child(self, spec: ChildSpec) -> None:
        """Start a child and return once it called ``task_status.started()``.

        Raises:
            SupervisorNotRunning: ``run()`` is not active or the supervisor is shutting down.
            DuplicateChild: a child with ``spec.id`` is already supervised.
            TooManyChildren: ``max_children`` children are already supervised.
            ValidationFailed: ``spec.significant`` (a dynamic supervisor never shuts down
                on its children's account, so OTP rejects it).
            ChildStartError: the child ended before ``started()`` (its exception chained).

        Cancellation: if the caller is cancelled while the child initialises, the child
        still starts and stays supervised.
        """
        await self._engine.start_child(spec)

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child (within its ``shutdown_timeout``) and forget it; it is not restarted.

        A child waiting out a restart backoff (state ``restarting``) is stopped at once.

        Raises:
            SupervisorNotRunning: ``run()`` is not active or the supervisor is shutting down.
            ChildNotFound: no child with that id is supervised.

        Cancellation: once the child has been forgotten, a cancelled caller stops waiting
        but the child still stops.
        """
        await self._engine.terminate_child(child_id)

    def count_children(self) -> ChildCounts:
        """How many children are supervised and how many of them run."""
        return self._engine.count_children()

    def child_spec(
        self,
        id: str | None = None,
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown_timeout: float = math.inf,
    ) -> ChildSpec:
        """A spec that runs this supervisor as a child of another one."""
        return ChildSpec(
            id=id if id is not None else self.name,
            start=self.run,
            restart=restart,
            shutdown_timeout=shutdown_timeout,
        )

    def monitor(self, child_id: str) -> ChildMonitor:
        """Watch the current life of child ``child_id`` (OTP ``erlang:monitor``).

        The returned :class:`~supervisors.ChildMonitor`'s ``await wait()`` gives the
        :class:`~supervisors.ChildDown` that ends the life: the child ended and will not be
        started again (returned and not restarted, crashed and not restarted, stopped by
        this supervisor, abandoned past its stop deadline). A crash followed by a restart
        does not end it. If the child is not running now, the monitor has already fired
        with reason ``noproc`` (ended children are forgotten; an unknown id is treated the
        same, as OTP does for a dead process).

        Must be called from inside the event loop. Never blocks; monitors hold no
        supervisor resources (drop one to demonitor).
        """
        return self._engine.monitor(child_id)

    def which_children(self) -> list[ChildInfo]:
        """A snapshot of every supervised child, in start order."""
        return self._engine.which_children()

    def restart_history(self) -> list[RestartRecord]:
        """The most recent restarts, oldest first, at most ``history_cap`` of them."""
        return self._engine.restart_history()

    def statistics(self) -> SupervisorStatistics:
        """A frozen snapshot of counters and sizes."""
        return self._engine.statistics()
