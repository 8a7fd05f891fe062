"""TaskSupervisor: supervised one-off tasks with results, bounded, stopped with their tree."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

from policies import ValidationFailed
from supervisors import (
    ChildState,
    Supervisor,
    SupervisorNotRunning,
    TaskStopped,
    TaskSupervisor,
    TooManyChildren,
)
from tests.supervisors.conftest import Boom


async def test_results_errors_and_statistics(autojump_clock: trio.testing.MockClock) -> None:
    async def value() -> int:
        await trio.sleep(1.0)
        return 42

    async def failing() -> int:
        await trio.sleep(1.0)
        raise Boom("task")

    async with TaskSupervisor(max_tasks=3) as tasks:
        ok = await tasks.start(value)
        bad = await tasks.start(failing, name="failing")
        assert bad.id == "failing-2" and not ok.done
        assert tasks.statistics().running == 2
        with trio.fail_after(5):
            assert await ok.result() == 42
            with pytest.raises(Boom, match="task"):
                await bad.result()
        await ok.cancel()  # already ended: nothing to do
        stats = tasks.statistics()
    assert (stats.running, stats.max_tasks) == (0, 3)
    assert (stats.started_total, stats.succeeded_total, stats.failed_total) == (2, 1, 1)
    assert stats.stopped_total == 0


async def test_bound_cancel_and_stop(autojump_clock: trio.testing.MockClock) -> None:
    async def forever() -> None:
        await trio.sleep_forever()

    async with TaskSupervisor(max_tasks=2) as tasks:
        first = await tasks.start(forever)
        second = await tasks.start(forever)
        with pytest.raises(TooManyChildren):
            await tasks.start(forever)
        await first.cancel()
        with pytest.raises(TaskStopped):
            await first.result()
        third = await tasks.start(forever)  # room again
    for handle in (second, third):
        assert handle.done
        with pytest.raises(TaskStopped):
            await handle.result()
    assert tasks.statistics().stopped_total == 3
    with pytest.raises(SupervisorNotRunning):
        await tasks.start(forever)


async def test_as_a_child_of_a_tree() -> None:
    tasks = TaskSupervisor(name="jobs")

    async def double(x: int) -> int:
        await trio.lowlevel.checkpoint()
        return 2 * x

    root = Supervisor([tasks.child_spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        assert [(c.id, c.state) for c in root.which_children()] == [("jobs", ChildState.RUNNING)]
        handles = [await tasks.start(lambda i=i: double(i)) for i in range(5)]
        with trio.fail_after(1):
            assert [await h.result() for h in handles] == [0, 2, 4, 6, 8]
        nursery.cancel_scope.cancel()


def test_validation() -> None:
    with pytest.raises(ValidationFailed):
        TaskSupervisor(max_tasks=0)
    with pytest.raises(ValidationFailed):
        TaskSupervisor(shutdown_timeout=-1.0)
