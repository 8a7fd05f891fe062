"""No unbounded growth: 100,000 restarts leave every table at its configured bound."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from policies import RestartPolicy
from supervisors import ChildSpec, Strategy, Supervisor
from tests.supervisors.conftest import Boom

RESTARTS = 100_000


async def test_bookkeeping_bounded_over_100k_restarts(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # pytest keeps every captured record; 100,000 restart warnings are not the subject here.
    caplog.set_level(logging.ERROR, logger="garrison.supervisors")
    count = 0
    done = trio.Event()

    async def flaky(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal count
        task_status.started()
        count += 1
        if count > RESTARTS:
            done.set()
            await trio.sleep_forever()
        if count % 40 == 0:
            # 40 restarts per 20 ms of clock: under the intensity of 50 per 10 ms.
            await trio.sleep(0.02)
        raise Boom(count)

    async def steady(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep_forever()

    policy = RestartPolicy(max_restarts=50, period_s=0.01)  # 50 per 10 ms: never exceeded
    sup = Supervisor(
        [ChildSpec(id="flaky", start=flaky), ChildSpec(id="steady", start=steady)],
        Strategy.ONE_FOR_ONE,
        policy,
        history_cap=64,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await done.wait()
        engine = sup._engine
        stats = sup.statistics()
        assert stats.restarts_total == RESTARTS
        assert stats.history_size == 64
        assert len(sup.restart_history()) == 64
        assert len(engine._recent) <= policy.window
        assert len(engine._queue) <= len(engine.children)
        assert len(engine.children) == 2
        assert len(sup.which_children()) == 2
        # Only the two live incarnations remain as tasks in the supervisor's nursery.
        nursery_tasks = [n for n in trio.lowlevel.current_task().child_nurseries if n.child_tasks]
        assert nursery_tasks
        nursery.cancel_scope.cancel()
