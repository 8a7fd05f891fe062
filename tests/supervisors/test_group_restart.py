"""Group restarts run from the crashed child's task: order, bounds and races held."""

from __future__ import annotations

from typing import Any

import anyio
import trio
import trio.testing
from anyio.abc import TaskStatus

from policies import RestartPolicy
from supervisors import ChildSpec, ChildState, Strategy, Supervisor, shutdown_grace
from tests.supervisors.conftest import Boom

POLICY = RestartPolicy(max_restarts=10, period_s=1.0)


class Group:
    """Children a, b, c journalling start/stop; ``crash[id]`` makes one raise."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.crash: dict[str, trio.Event] = {}
        self.cleanup_s: dict[str, float] = {}
        self.stubborn: set[str] = set()

    def of(self, kind: str) -> list[str]:
        return [cid for k, cid in self.events if k == kind]

    def spec(self, cid: str, **kwargs: Any) -> ChildSpec:
        async def start(*, task_status: TaskStatus[Any]) -> None:
            self.events.append(("start", cid))
            self.crash[cid] = trio.Event()
            task_status.started()
            try:
                await self.crash[cid].wait()
                raise Boom(cid)
            finally:
                self.events.append(("stop", cid))
                if cid in self.stubborn:
                    # Ignores its stop until far past every deadline.
                    with anyio.CancelScope(shield=True):
                        await anyio.sleep(100)
                elif cid in self.cleanup_s:
                    with shutdown_grace():
                        await anyio.sleep(self.cleanup_s[cid])

        return ChildSpec(id=cid, start=start, **kwargs)


async def test_stops_in_reverse_order_and_starts_in_order(autojump_clock: Any) -> None:
    g = Group()
    g.cleanup_s = {"a": 0.2, "c": 0.3}
    sup = Supervisor([g.spec(x) for x in "abc"], Strategy.ONE_FOR_ALL, POLICY)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        g.events.clear()
        g.crash["b"].set()
        with trio.fail_after(5):
            while len(g.of("start")) < 3:
                await trio.sleep(0.01)
        assert g.of("stop") == ["b", "c", "a"]
        assert g.of("start") == ["a", "b", "c"]
        assert g.events.index(("stop", "a")) < g.events.index(("start", "a"))
        assert sup.statistics().restarts_total == 1
        assert all(c.restarts == 1 for c in sup.which_children())
        assert [r.restarted for r in sup.restart_history()] == [3]
        nursery.cancel_scope.cancel()


async def test_a_stubborn_sibling_is_abandoned_and_the_rest_stopped_in_order(
    autojump_clock: Any,
) -> None:
    g = Group()
    g.stubborn = {"c"}
    sup = Supervisor(
        [g.spec("a"), g.spec("b"), g.spec("c", shutdown_timeout=1.0)],
        Strategy.ONE_FOR_ALL,
        POLICY,
        kill_timeout=0.5,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        g.events.clear()
        began = trio.current_time()
        g.crash["b"].set()
        with trio.fail_after(10):
            while len(g.of("start")) < 3:
                await trio.sleep(0.01)
        # c's grace, then its kill time, before a is asked to stop.
        assert trio.current_time() - began >= 1.5
        assert g.of("stop") == ["b", "c", "a"]
        assert g.of("start") == ["a", "b", "c"]
        stats = sup.statistics()
        assert stats.abandoned_total == 1 and stats.restarts_total == 1
        assert {c.id: c.state for c in sup.which_children()} == {
            x: ChildState.RUNNING for x in "abc"
        }
        g.stubborn.clear()
        nursery.cancel_scope.cancel()


async def test_a_stubborn_first_sibling_then_a_slow_one(autojump_clock: Any) -> None:
    g = Group()
    g.stubborn = {"c"}
    g.cleanup_s = {"a": 0.2}
    sup = Supervisor(
        [g.spec("a"), g.spec("b"), g.spec("c", shutdown_timeout=1.0)],
        Strategy.ONE_FOR_ALL,
        POLICY,
        kill_timeout=0.5,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        g.events.clear()
        g.crash["b"].set()
        with trio.fail_after(10):
            while len(g.of("start")) < 3:
                await trio.sleep(0.01)
        assert g.of("stop") == ["b", "c", "a"]
        assert g.of("start") == ["a", "b", "c"]
        g.stubborn.clear()
        nursery.cancel_scope.cancel()


async def test_stopping_the_supervisor_during_a_group_restart(autojump_clock: Any) -> None:
    g = Group()
    g.cleanup_s = {"c": 1.0}
    sup = Supervisor([g.spec(x) for x in "abc"], Strategy.ONE_FOR_ALL, POLICY)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            g.events.clear()
            g.crash["b"].set()
            await trio.sleep(0.5)  # c is in its cleanup
            nursery.cancel_scope.cancel()
    assert g.of("start") == []
    assert g.of("stop") == ["b", "c", "a"]
    assert not sup.statistics().running


async def test_stopping_the_supervisor_while_a_stubborn_sibling_holds_the_chain(
    autojump_clock: Any,
) -> None:
    g = Group()
    g.stubborn = {"c"}
    sup = Supervisor(
        [g.spec("a"), g.spec("b"), g.spec("c", shutdown_timeout=1.0)],
        Strategy.ONE_FOR_ALL,
        POLICY,
        kill_timeout=0.5,
    )
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            g.events.clear()
            g.crash["b"].set()
            await trio.sleep(1.2)  # c past its grace, being killed
            nursery.cancel_scope.cancel()
    assert g.of("start") == []
    assert "a" in g.of("stop")
    g.stubborn.clear()


async def test_a_sibling_that_crashes_while_the_group_stops_is_absorbed(
    autojump_clock: Any,
) -> None:
    g = Group()
    g.cleanup_s = {"c": 1.0}
    sup = Supervisor([g.spec(x) for x in "abc"], Strategy.ONE_FOR_ALL, POLICY)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        g.events.clear()
        g.crash["b"].set()
        await trio.sleep(0.5)  # c is in its cleanup
        g.crash["a"].set()  # a ends on its own before it is asked to stop
        with trio.fail_after(10):
            while len(g.of("start")) < 3:
                await trio.sleep(0.01)
        await trio.testing.wait_all_tasks_blocked()
        # c's stop is journalled when it is asked, before its cleanup.
        assert g.of("stop") == ["b", "c", "a"]
        assert g.of("start") == ["a", "b", "c"]
        assert sup.statistics().restarts_total == 1
        assert {c.id: c.state for c in sup.which_children()} == {
            x: ChildState.RUNNING for x in "abc"
        }
        nursery.cancel_scope.cancel()


async def test_admin_calls_wait_for_the_group_to_be_up(autojump_clock: Any) -> None:
    g = Group()
    g.cleanup_s = {"c": 1.0}
    sup = Supervisor([g.spec(x) for x in "abc"], Strategy.REST_FOR_ONE, POLICY)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        g.events.clear()
        g.crash["b"].set()
        await trio.sleep(0.5)  # c is in its cleanup, the group restart holds the lock
        await sup.terminate_child("c")
        # The restart finished (b and c up) before terminate_child ran.
        assert g.of("start") == ["b", "c"]
        assert g.of("stop") == ["b", "c", "c"]
        states = {c.id: c.state for c in sup.which_children()}
        assert states == {"a": ChildState.RUNNING, "b": ChildState.RUNNING, "c": ChildState.STOPPED}
        nursery.cancel_scope.cancel()


async def test_a_crash_while_an_admin_call_holds_the_lock_goes_to_the_control_loop(
    autojump_clock: Any,
) -> None:
    g = Group()
    g.cleanup_s = {"c": 1.0}
    sup = Supervisor([g.spec(x) for x in "abc"], Strategy.ONE_FOR_ALL, POLICY)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        g.events.clear()
        nursery.start_soon(sup.terminate_child, "c")
        await trio.sleep(0.5)  # terminate_child holds the lock through c's cleanup
        g.crash["b"].set()
        with trio.fail_after(10):
            while len(g.of("start")) < 3:
                await trio.sleep(0.01)
        await trio.testing.wait_all_tasks_blocked()
        # The control loop's group restart starts every listed child, c included.
        assert g.of("stop") == ["c", "b", "a"]
        assert g.of("start") == ["a", "b", "c"]
        assert sup.statistics().restarts_total == 1
        nursery.cancel_scope.cancel()
