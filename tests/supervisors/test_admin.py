"""Admin API: start/terminate/restart/delete/count children; backoff never blocks it."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from policies import Backoff, RestartPolicy
from supervisors import (
    ChildCounts,
    ChildNotFound,
    ChildRunning,
    ChildSpec,
    ChildStartError,
    ChildState,
    DownReason,
    DuplicateChild,
    DynamicSupervisor,
    Restart,
    Strategy,
    Supervisor,
    SupervisorNotRunning,
)
from tests.supervisors.conftest import Boom, Puppets, settle

BACKOFF = RestartPolicy(max_restarts=10, period_s=100.0, backoff=Backoff(min_s=10.0, max_s=10.0))


def _flaky(fail_after_first: bool) -> Any:
    """A child that is up once, then crashes (before ``started()`` if asked) forever."""
    runs = 0

    async def start(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal runs
        runs += 1
        if runs > 1 and fail_after_first:
            raise Boom("init")
        task_status.started()
        await trio.sleep(1.0)
        raise Boom("run")

    return start


@pytest.mark.parametrize("fail_init", [False, True])
async def test_dynamic_backoff_holds_no_lock_and_can_be_terminated(
    fail_init: bool, autojump_clock: trio.testing.MockClock, puppets: Puppets
) -> None:
    sup = DynamicSupervisor(BACKOFF)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.start_child(ChildSpec(id="f", start=_flaky(fail_init)))
        await trio.sleep(1.5)  # crashed at 1.0, backing off until 11.0
        if fail_init:
            await trio.sleep(10.0)  # restarted at 11.0, failed its init: backing off again
        [info] = sup.which_children()
        assert info.state is ChildState.RESTARTING
        now = trio.current_time()
        await sup.start_child(puppets.spec("other"))
        monitor = sup.monitor("f")
        await sup.terminate_child("f")
        assert trio.current_time() == now  # neither call waited out the backoff
        assert monitor.down is not None and monitor.down.reason is DownReason.SHUTDOWN
        assert [c.id for c in sup.which_children()] == ["other"]
        nursery.cancel_scope.cancel()


async def test_static_admin_api(puppets: Puppets) -> None:
    sup = Supervisor([puppets.spec("a")], Strategy.ONE_FOR_ALL)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.start_child(puppets.spec("b"))
        await sup.start_child(puppets.spec("t", restart=Restart.TEMPORARY))
        assert sup.count_children() == ChildCounts(specs=3, active=3)
        with pytest.raises(DuplicateChild):
            await sup.start_child(puppets.spec("b"))
        with pytest.raises(ChildRunning):
            await sup.restart_child("b")
        with pytest.raises(ChildRunning):
            await sup.delete_child("b")

        await sup.terminate_child("b")
        assert [(c.id, c.state) for c in sup.which_children()] == [
            ("a", ChildState.RUNNING),
            ("b", ChildState.STOPPED),
            ("t", ChildState.RUNNING),
        ]
        assert sup.count_children() == ChildCounts(specs=3, active=2)
        await sup.terminate_child("b")  # stopping a stopped child does nothing
        await sup.restart_child("b")
        assert "b" in puppets.alive()
        await sup.terminate_child("b")
        await sup.delete_child("b")
        await sup.terminate_child("t")  # a temporary child's spec goes with it (OTP)
        assert [c.id for c in sup.which_children()] == ["a"]
        for call in (sup.terminate_child, sup.restart_child, sup.delete_child):
            with pytest.raises(ChildNotFound):
                await call("b")

        # An added child takes part in group restarts like the others.
        await sup.start_child(puppets.spec("c"))
        puppets.journal.events.clear()
        puppets.order("a", "crash")
        await settle()
        assert puppets.journal.of("start") == ["a", "c"]
        nursery.cancel_scope.cancel()
    with pytest.raises(SupervisorNotRunning):
        await sup.start_child(puppets.spec("z"))


async def test_static_start_child_failure_keeps_permanent_spec() -> None:
    async def broken(*, task_status: Any) -> None:
        raise Boom("init")

    sup = Supervisor([])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        with pytest.raises(ChildStartError):
            await sup.start_child(ChildSpec(id="p", start=broken))
        with pytest.raises(ChildStartError):
            await sup.start_child(ChildSpec(id="t", start=broken, restart=Restart.TEMPORARY))
        assert [(c.id, c.state) for c in sup.which_children()] == [("p", ChildState.STOPPED)]
        with pytest.raises(ChildStartError):
            await sup.restart_child("p")
        nursery.cancel_scope.cancel()


async def test_group_restart_backoff_holds_no_lock(
    autojump_clock: trio.testing.MockClock, puppets: Puppets
) -> None:
    sup = Supervisor([puppets.spec("a"), puppets.spec("b")], Strategy.ONE_FOR_ALL, BACKOFF)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        puppets.order("a", "crash")
        await settle()
        states = {c.id: c.state for c in sup.which_children()}
        assert states == {"a": ChildState.RESTARTING, "b": ChildState.STARTING}
        now = trio.current_time()
        await sup.start_child(puppets.spec("c"))  # not held up by the 10 s backoff
        assert trio.current_time() == now
        await trio.sleep(10.5)
        assert puppets.alive() == {"a", "b", "c"}
        assert puppets.journal.of("start") == ["a", "b", "c", "a", "b"]
        nursery.cancel_scope.cancel()


async def test_group_restart_with_a_failing_start_is_redone_in_order() -> None:
    starts: list[str] = []
    fail_b = [False]

    def spec(child_id: str) -> ChildSpec:
        async def start(*, task_status: trio.TaskStatus[None]) -> None:
            starts.append(child_id)
            if child_id == "b" and fail_b[0]:
                fail_b[0] = False
                raise Boom("b init")
            task_status.started()
            await trio.sleep_forever()

        return ChildSpec(id=child_id, start=start)

    crash = trio.Event()

    async def a(*, task_status: trio.TaskStatus[None]) -> None:
        starts.append("a")
        task_status.started()
        await crash.wait()
        raise Boom("a")

    sup = Supervisor(
        [ChildSpec(id="a", start=a), spec("b"), spec("c")],
        Strategy.ONE_FOR_ALL,
        RestartPolicy(max_restarts=5),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        starts.clear()
        fail_b[0] = True
        crash.set()
        crash = trio.Event()
        await settle()
        # b's failed start stops the group start before c; the group is restarted again.
        assert starts == ["a", "b", "a", "b", "c"]
        assert {c.state for c in sup.which_children()} == {ChildState.RUNNING}
        assert sup.statistics().restarts_total == 2
        nursery.cancel_scope.cancel()
