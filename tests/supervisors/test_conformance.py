"""The conformance subset, on both anyio backends: Trio (reference) and asyncio.

No clock tricks here (asyncio has no mock clock): children are driven by events and the
tests wait with ``anyio.wait_all_tasks_blocked()``, so they are deterministic on both.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import sniffio
from anyio.streams.memory import MemoryObjectReceiveStream

from policies import RestartPolicy
from supervisors import (
    ChildSpec,
    DynamicSupervisor,
    PartitionSupervisor,
    Strategy,
    Supervisor,
    SupervisorEscalation,
    TooManyChildren,
)
from tests.supervisors.conftest import Boom, Puppets, settle

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_runs_on_the_requested_backend(anyio_backend: str) -> None:
    assert sniffio.current_async_library() == anyio_backend


@pytest.mark.parametrize("strategy", list(Strategy))
async def test_strategies(strategy: Strategy) -> None:
    puppets = Puppets()
    sup = Supervisor([puppets.spec(x) for x in "abc"], strategy, RestartPolicy(5, 60.0))
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        puppets.journal.events.clear()
        puppets.order("b", "crash")
        await settle()
        expected = {
            Strategy.ONE_FOR_ONE: ["b"],
            Strategy.ONE_FOR_ALL: ["a", "b", "c"],
            Strategy.REST_FOR_ONE: ["b", "c"],
        }[strategy]
        assert puppets.journal.of("start") == expected
        assert sup.statistics().children_running == 3
        tg.cancel_scope.cancel()
    assert puppets.journal.of("stop")[-3:] == ["c", "b", "a"]


async def test_escalation_and_reverse_stop() -> None:
    puppets = Puppets()
    sup = Supervisor([puppets.spec(x) for x in "abc"], policy=RestartPolicy(1, 60.0))
    errors: list[BaseException] = []

    async def runner(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            await sup.run(task_status=task_status)
        except SupervisorEscalation as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        await tg.start(runner)
        puppets.order("a", "crash")
        await settle()
        puppets.journal.events.clear()
        puppets.order("a", "crash")
    assert puppets.journal.of("stop") == ["a", "c", "b"]
    assert isinstance(errors[0].__cause__, Boom)


async def test_nested_escalation() -> None:
    crashes = 0

    async def worker(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        nonlocal crashes
        task_status.started()
        await anyio.lowlevel.checkpoint()
        crashes += 1
        raise Boom

    inner = Supervisor([ChildSpec(id="w", start=worker)], policy=RestartPolicy(1, 60.0))
    outer = Supervisor([inner.child_spec("inner")], policy=RestartPolicy(1, 60.0))
    with pytest.raises(SupervisorEscalation) as info:
        await outer.run()
    assert isinstance(info.value.__cause__, SupervisorEscalation)
    assert crashes == 4


async def test_dynamic_children() -> None:
    puppets = Puppets()
    sup = DynamicSupervisor(max_children=2)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await sup.start_child(puppets.spec("a"))
        await sup.start_child(puppets.spec("b"))
        with pytest.raises(TooManyChildren):
            await sup.start_child(puppets.spec("c"))
        await sup.terminate_child("a")
        await sup.start_child(puppets.spec("c"))
        tg.cancel_scope.cancel()
    assert puppets.journal.of("stop") == ["a", "c", "b"]


async def test_partitions() -> None:
    seen: list[tuple[int, Any]] = []

    def child(index: int, inbox: MemoryObjectReceiveStream[Any]) -> ChildSpec:
        async def run(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            task_status.started()
            async for item in inbox:
                if item == "crash":
                    raise Boom
                seen.append((index, item))

        return ChildSpec(id=f"p{index}", start=run)

    with PartitionSupervisor[Any](3, child, policy=RestartPolicy(3, 60.0)) as sup:
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            await sup.send("k", "crash")
            for i in range(5):
                await sup.send("k", i)
            await settle()
            tg.cancel_scope.cancel()
    assert seen == [(sup.route("k"), i) for i in range(5)]
    assert [c.restarts for c in sup.which_children()] == [
        int(i == sup.route("k")) for i in range(3)
    ]
