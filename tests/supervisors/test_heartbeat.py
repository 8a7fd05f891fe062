"""Hang detection: children that stop heartbeating are cancelled and handled as crashes."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from policies import RestartPolicy
from supervisors import (
    ChildHung,
    ChildSpec,
    RestartReason,
    Supervisor,
    SupervisorEscalation,
    current_child,
    heartbeat,
    shutdown_grace,
)


async def test_heartbeating_child_is_left_alone(autojump_clock: trio.testing.MockClock) -> None:
    async def healthy(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        while True:
            await trio.sleep(0.9)
            heartbeat()

    sup = Supervisor([ChildSpec(id="h", start=healthy, heartbeat_timeout=1.0)])
    with trio.move_on_after(100.0):
        await sup.run()
    assert sup.statistics().hangs_total == 0
    assert sup.statistics().restarts_total == 0


async def test_silent_child_is_cancelled_and_restarted_as_hang(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []
    cleaned: list[float] = []

    async def hangs(*, task_status: trio.TaskStatus[None]) -> None:
        starts.append(trio.current_time())
        task_status.started()
        heartbeat()
        await trio.sleep(0.5)
        heartbeat()  # deadline now 0.5 + 2.0 after this start
        try:
            await trio.sleep_forever()
        finally:
            cleaned.append(trio.current_time())

    sup = Supervisor(
        [ChildSpec(id="h", start=hangs, heartbeat_timeout=2.0)], policy=RestartPolicy(1, 60.0)
    )
    with pytest.raises(SupervisorEscalation) as info:
        await sup.run()
    assert starts == [0.0, 2.5]
    assert cleaned == [2.5, 5.0]  # its cleanup ran: cancelled, not abandoned
    assert info.value.reason == "hang"
    assert isinstance(info.value.__cause__, ChildHung)
    assert sup.statistics().hangs_total == 2
    [record] = sup.restart_history()
    assert record.reason is RestartReason.HANG
    failure = sup.which_children()[0].last_failure
    assert failure is not None
    assert failure.reason is RestartReason.HANG


async def test_heartbeat_from_a_task_spawned_by_the_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def pulse() -> None:
        while True:
            await trio.sleep(1.0)
            heartbeat()

    async def worker(*, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pulse)
            task_status.started()
            await trio.sleep_forever()

    sup = Supervisor([ChildSpec(id="w", start=worker, heartbeat_timeout=1.5)])
    with trio.move_on_after(50.0):
        await sup.run()
    assert sup.statistics().hangs_total == 0


async def test_child_swallowing_cancel_still_counts_as_hang(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def swallows(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            raise RuntimeError("converted") from None

    sup = Supervisor(
        [ChildSpec(id="s", start=swallows, heartbeat_timeout=1.0)], policy=RestartPolicy(0, 1.0)
    )
    with pytest.raises(SupervisorEscalation) as info:
        await sup.run()
    assert info.value.reason == "hang"


async def test_context_outside_supervision() -> None:
    assert current_child() is None
    heartbeat()  # a no-op, not an error
    with shutdown_grace() as scope:
        assert scope.shield
        await trio.lowlevel.checkpoint()


async def test_context_inside_supervision() -> None:
    seen: list[object] = []

    async def child(*, task_status: trio.TaskStatus[None]) -> None:
        ctx = current_child()
        assert ctx is not None
        seen.append((ctx.child_id, ctx.is_started, ctx.stopping))
        task_status.started()
        seen.append(ctx.is_started)
        ctx.heartbeat()  # no heartbeat_timeout: a no-op
        await trio.sleep_forever()

    sup = Supervisor([ChildSpec(id="c", start=child)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        nursery.cancel_scope.cancel()
    assert seen == [("c", False, False), True]
