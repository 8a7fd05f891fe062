"""``TaskSupervisor``: one-off tasks run under supervision, with results (Elixir's
``Task.Supervisor``)."""

from __future__ import annotations

import contextlib
import itertools
import math
import random
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from policies import RestartPolicy, ValidationFailed
from supervisors._child import ChildSpec, Restart
from supervisors._down import ChildDown, DownReason
from supervisors._dynamic import DynamicSupervisor
from supervisors._errors import ChildNotFound, TaskStopped

__all__ = ["TaskHandle", "TaskSupervisor", "TaskSupervisorStatistics"]

T = TypeVar("T")


class TaskSupervisorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a :class:`TaskSupervisor`.

    Attributes:
        name: its name.
        running: tasks started and not yet ended.
        max_tasks: the bound on ``running``.
        started_total: tasks started since construction.
        succeeded_total: tasks that returned a value.
        failed_total: tasks that raised.
        stopped_total: tasks stopped before they ended (``cancel()``, the supervisor
            stopping) or abandoned past their stop deadline.
    """

    name: str
    running: int
    max_tasks: int
    started_total: int
    succeeded_total: int
    failed_total: int
    stopped_total: int


class TaskHandle(Generic[T]):
    """One task started by :meth:`TaskSupervisor.start`: await its result, or cancel it."""

    __slots__ = ("_done", "_error", "_has_value", "_owner", "_value", "id")

    def __init__(self, owner: TaskSupervisor, task_id: str) -> None:
        self.id = task_id
        self._owner = owner
        self._done = anyio.Event()
        self._value: T | None = None
        self._has_value = False
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        """Whether the task has ended (returned, raised, or was stopped)."""
        return self._done.is_set()

    async def result(self) -> T:
        """Wait for the task and return its function's return value.

        Raises:
            Exception: whatever the function raised (the same object).
            TaskStopped: the task was stopped before it ended (:meth:`cancel`, or its
                supervisor stopping) or abandoned past its stop deadline.

        Cancellation: unbounded by itself; bound it with the caller's own scope.
            Cancelling the wait leaves the task running.
        """
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    async def cancel(self) -> None:
        """Stop the task (bounded as any child's stop); a no-op once it has ended."""
        if not self.done:
            await self._owner._cancel(self.id)

    def _set(self, down: ChildDown) -> None:
        if down.reason is DownReason.CRASHED and down.error is not None:
            self._error = down.error
        elif down.reason is not DownReason.NORMAL or not self._has_value:
            self._error = TaskStopped(f"task {self.id!r} was stopped ({down.reason.value})")
        self._done.set()


class TaskSupervisor:
    """Starts one-off tasks under supervision and hands back their results.

    Each task is a temporary child of an inner :class:`~supervisors.DynamicSupervisor`: it
    is never restarted, its end is recorded in its :class:`TaskHandle`, and stopping the
    task supervisor stops every task still running (bounded, as any supervisor's stop).
    Use it as a child of a tree (:meth:`child_spec`, or ``await tg.start(tasks.run)``) or on
    its own with ``async with TaskSupervisor() as tasks:`` (leaving the block stops the
    tasks still running; their handles raise :class:`~supervisors.TaskStopped`).

    Args:
        max_tasks: bound on tasks running at once (default 1000); :meth:`start` raises
            ``TooManyChildren`` past it.
        name: used in telemetry, logs and errors.
        shutdown_timeout: each task's ``shutdown_timeout`` (default 5 s).
        kill_timeout, stop_timeout, tracer_provider, meter_provider, random: as for
            :class:`~supervisors.DynamicSupervisor`.

    Raises:
        ValidationFailed: ``max_tasks < 1`` or a negative timeout.
    """

    def __init__(
        self,
        *,
        max_tasks: int = 1000,
        name: str = "task_supervisor",
        shutdown_timeout: float = 5.0,
        kill_timeout: float = 1.0,
        stop_timeout: float = math.inf,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        random: random.Random | None = None,
    ) -> None:
        if not shutdown_timeout >= 0.0:
            raise ValidationFailed(
                f"shutdown_timeout must be >= 0, got {shutdown_timeout}", field="shutdown_timeout"
            )
        self._sup = DynamicSupervisor(
            # Tasks are temporary: the intensity never counts them.
            RestartPolicy(),
            max_children=max_tasks,
            name=name,
            stop_timeout=stop_timeout,
            kill_timeout=kill_timeout,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            random=random,
        )
        self._shutdown_timeout = shutdown_timeout
        self._ids = itertools.count(1)
        self._tg: TaskGroup | None = None
        self._started = 0
        self._succeeded = 0
        self._failed = 0
        self._stopped = 0

    @property
    def name(self) -> str:
        """The task supervisor's name."""
        return self._sup.name

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Supervise tasks until cancelled; ``started()`` is called at once.

        Cancellation: tasks still running are stopped, as :meth:`DynamicSupervisor.run`.
        """
        await self._sup.run(task_status=task_status)

    def child_spec(self, id: str | None = None) -> ChildSpec:
        """A spec that runs this task supervisor as a child of another supervisor."""
        return self._sup.child_spec(id if id is not None else self.name)

    async def __aenter__(self) -> TaskSupervisor:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            await tg.start(self.run)
        except BaseException as exc:
            await tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._tg = tg
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg, self._tg = self._tg, None
        assert tg is not None
        tg.cancel_scope.cancel()
        return await tg.__aexit__(exc_type, exc, tb)

    async def start(
        self, fn: Callable[[], Awaitable[T]], *, name: str | None = None
    ) -> TaskHandle[T]:
        """Start ``fn()`` as a supervised task and return its handle at once.

        Raises:
            SupervisorNotRunning: the task supervisor is not running.
            TooManyChildren: ``max_tasks`` tasks are running.

        Cancellation: if the caller is cancelled here, the task may still have started.
        """
        task_id = f"{name or 'task'}-{next(self._ids)}"
        handle: TaskHandle[T] = TaskHandle(self, task_id)

        async def body(*, task_status: TaskStatus[Any]) -> None:
            task_status.started()
            value = await fn()
            handle._value = value
            handle._has_value = True

        def on_down(down: ChildDown) -> None:
            if down.reason is DownReason.NORMAL:
                self._succeeded += 1
            elif down.reason is DownReason.CRASHED:
                self._failed += 1
            else:
                self._stopped += 1
            handle._set(down)

        spec = ChildSpec(
            id=task_id,
            start=body,
            restart=Restart.TEMPORARY,
            shutdown_timeout=self._shutdown_timeout,
            on_down=on_down,
        )
        await self._sup.start_child(spec)
        self._started += 1
        return handle

    async def _cancel(self, task_id: str) -> None:
        # ChildNotFound: it ended meanwhile, and its handle has its outcome.
        with contextlib.suppress(ChildNotFound):
            await self._sup.terminate_child(task_id)

    def statistics(self) -> TaskSupervisorStatistics:
        """A frozen snapshot of counters and sizes."""
        stats = self._sup.statistics()
        return TaskSupervisorStatistics(
            name=self.name,
            running=stats.children,
            max_tasks=self._sup.max_children,
            started_total=self._started,
            succeeded_total=self._succeeded,
            failed_total=self._failed,
            stopped_total=self._stopped,
        )
