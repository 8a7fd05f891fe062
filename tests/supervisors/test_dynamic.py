"""DynamicSupervisor: children started and stopped at run time, within max_children."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from policies import RestartPolicy
from supervisors import (
    ChildNotFound,
    ChildSpec,
    ChildStartError,
    DuplicateChild,
    DynamicSupervisor,
    Restart,
    SupervisorEscalation,
    SupervisorNotRunning,
    TooManyChildren,
)
from tests.supervisors.conftest import Boom, Puppets, settle


async def test_start_and_terminate(puppets: Puppets) -> None:
    sup = DynamicSupervisor()
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.start_child(puppets.spec("a"))
        await sup.start_child(puppets.spec("b"))
        assert [c.id for c in sup.which_children()] == ["a", "b"]
        await sup.terminate_child("a")
        assert [c.id for c in sup.which_children()] == ["b"]
        assert puppets.journal.events == [("start", "a"), ("start", "b"), ("stop", "a")]
        with pytest.raises(ChildNotFound):
            await sup.terminate_child("a")
        nursery.cancel_scope.cancel()
    assert sup.which_children() == []


async def test_max_children_is_enforced_and_frees_up(puppets: Puppets) -> None:
    sup = DynamicSupervisor(max_children=2)
    assert sup.max_children == 2
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.start_child(puppets.spec("a"))
        await sup.start_child(puppets.spec("b", restart=Restart.TEMPORARY))
        with pytest.raises(TooManyChildren):
            await sup.start_child(puppets.spec("c"))
        puppets.order("b", "exit")  # a temporary child that ends is forgotten
        await settle()
        await sup.start_child(puppets.spec("c"))
        stats = sup.statistics()
        assert (stats.children, stats.max_children) == (2, 2)
        nursery.cancel_scope.cancel()


def test_default_max_children_is_bounded() -> None:
    assert DynamicSupervisor().max_children == 1000
    with pytest.raises(ValueError, match="max_children"):
        DynamicSupervisor(max_children=0)


async def test_duplicate_id_refused(puppets: Puppets) -> None:
    sup = DynamicSupervisor()
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.start_child(puppets.spec("a"))
        with pytest.raises(DuplicateChild):
            await sup.start_child(puppets.spec("a"))
        nursery.cancel_scope.cancel()


async def test_not_running(puppets: Puppets) -> None:
    sup = DynamicSupervisor()
    with pytest.raises(SupervisorNotRunning):
        await sup.start_child(puppets.spec("a"))
    with pytest.raises(SupervisorNotRunning):
        await sup.terminate_child("a")


async def test_start_failure_raises_and_forgets(puppets: Puppets) -> None:
    async def broken(*, task_status: trio.TaskStatus[None]) -> None:
        raise Boom("no")

    sup = DynamicSupervisor()
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        with pytest.raises(ChildStartError) as info:
            await sup.start_child(ChildSpec(id="x", start=broken))
        assert isinstance(info.value.__cause__, Boom)
        assert sup.which_children() == []
        nursery.cancel_scope.cancel()


async def test_restarts_one_for_one_and_forgets_finished_transients(puppets: Puppets) -> None:
    sup = DynamicSupervisor(RestartPolicy(5, 1.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.start_child(puppets.spec("p"))
        await sup.start_child(puppets.spec("t", restart=Restart.TRANSIENT))
        puppets.journal.events.clear()
        puppets.order("p", "crash")
        await settle()
        assert puppets.journal.events == [("stop", "p"), ("start", "p")]
        puppets.order("t", "crash")
        await settle()
        puppets.order("t", "exit")
        await settle()
        assert [c.id for c in sup.which_children()] == ["p"]
        assert sup.statistics().restarts_total == 2
        nursery.cancel_scope.cancel()


async def test_stops_in_reverse_start_order(puppets: Puppets) -> None:
    sup = DynamicSupervisor()
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for cid in "abc":
            await sup.start_child(puppets.spec(cid))
        nursery.cancel_scope.cancel()
    assert puppets.journal.of("stop") == ["c", "b", "a"]


async def test_escalates_past_intensity(puppets: Puppets) -> None:
    sup = DynamicSupervisor(RestartPolicy(1, 10.0), name="dyn")
    errors: list[BaseException] = []

    async def runner(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await sup.run(task_status=task_status)
        except SupervisorEscalation as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        await nursery.start(runner)
        await sup.start_child(puppets.spec("a"))
        puppets.order("a", "crash")
        await settle()
        puppets.order("a", "crash")
        await settle()
    assert len(errors) == 1
    assert "dyn" in str(errors[0])
    assert not sup.statistics().running


async def test_child_table_stays_bounded_under_churn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def short(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep(1.0)

    sup = DynamicSupervisor(max_children=8, history_cap=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for i in range(2000):
            while True:
                try:
                    await sup.start_child(
                        ChildSpec(id=f"job-{i}", start=short, restart=Restart.TRANSIENT)
                    )
                    break
                except TooManyChildren:
                    await trio.sleep(0.5)
            assert len(sup.which_children()) <= 8
        nursery.cancel_scope.cancel()
    assert sup.statistics().history_size == 0


async def test_terminate_racing_restart_is_consistent(puppets: Puppets) -> None:
    sup = DynamicSupervisor(RestartPolicy(5, 1.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.start_child(puppets.spec("a"))
        puppets.order("a", "crash")
        await sup.terminate_child("a")  # before the supervisor handled the crash
        await settle()
        assert sup.which_children() == []
        nursery.cancel_scope.cancel()


async def test_child_spec_for_nesting(puppets: Puppets) -> None:
    from supervisors import Supervisor

    dyn = DynamicSupervisor(name="pool")
    root = Supervisor([dyn.child_spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await dyn.start_child(puppets.spec("job"))
        nursery.cancel_scope.cancel()
    assert puppets.journal.of("stop") == ["job"]
    assert root.which_children()[0].id == "pool"
