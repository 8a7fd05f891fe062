"""PartitionSupervisor: stable routing, per-key order, isolation, inboxes that survive."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
import pytest
import trio
import trio.testing
from anyio.streams.memory import MemoryObjectReceiveStream

from policies import RestartPolicy
from supervisors import ChildSpec, PartitionSupervisor, Supervisor, partition_for
from tests.supervisors.conftest import Boom, settle

# Fixed for all time: changing the hash would move keys between partitions on upgrade.
EXPECTED = {"order-1": 5, "order-2": 3, "customer:42": 4, b"\x00\x01": 4, 42: 2, "42": 2, "": 4}


@pytest.mark.parametrize(("key", "partition"), list(EXPECTED.items()))
def test_routing_is_stable(key: str | bytes | int, partition: int) -> None:
    assert partition_for(key, 8) == partition


def test_routing_spreads_keys() -> None:
    counts = [0] * 8
    for i in range(8000):
        counts[partition_for(f"key-{i}", 8)] += 1
    assert min(counts) > 850  # within ~15% of an even 1000 each


def test_routing_validation() -> None:
    with pytest.raises(ValueError, match="partitions"):
        partition_for("k", 0)
    with pytest.raises(TypeError, match="partition key"):
        partition_for(1.5, 4)  # type: ignore[arg-type]


Seen = list[tuple[int, Any]]


async def _worker(
    seen: Seen,
    index: int,
    inbox: MemoryObjectReceiveStream[Any],
    *,
    task_status: anyio.abc.TaskStatus[None],
) -> None:
    task_status.started()
    async for item in inbox:
        if item == "crash":
            raise Boom(f"partition {index}")
        seen.append((index, item))


def _factory(seen: Seen) -> Any:
    def child(index: int, inbox: MemoryObjectReceiveStream[Any]) -> ChildSpec:
        return ChildSpec(id=f"p{index}", start=partial(_worker, seen, index, inbox))

    return child


async def test_items_reach_their_partition_in_order() -> None:
    seen: Seen = []
    with PartitionSupervisor[Any](4, _factory(seen), inbox_size=16) as sup:
        assert sup.partitions == 4
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            for i in range(50):
                for key in ("alpha", "beta", "gamma"):
                    assert await sup.send(key, (key, i)) == sup.route(key)
            await settle()
            nursery.cancel_scope.cancel()
    for key in ("alpha", "beta", "gamma"):
        got = [(p, item[1]) for p, item in seen if item[0] == key]
        assert [i for _, i in got] == list(range(50))  # per-key order held
        assert {p for p, _ in got} == {partition_for(key, 4)}


async def test_crash_restarts_only_its_partition_and_inbox_survives() -> None:
    seen: Seen = []
    sup = PartitionSupervisor[Any](4, _factory(seen), policy=RestartPolicy(3, 10.0))
    victim = sup.route("victim")
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.send("victim", "crash")
        await sup.send("victim", "after")  # queued while the partition restarts
        await settle()
        restarts = {c.id: c.restarts for c in sup.which_children()}
        assert restarts == {f"p{i}": int(i == victim) for i in range(4)}
        assert seen == [(victim, "after")]
        [record] = sup.restart_history()
        assert record.child_id == f"p{victim}"
        nursery.cancel_scope.cancel()
    sup.close()


async def test_send_nowait_and_backpressure(autojump_clock: trio.testing.MockClock) -> None:
    sup = PartitionSupervisor[Any](2, _factory([]), inbox_size=1)
    index = sup.send_nowait("k", 1)
    with pytest.raises(anyio.WouldBlock):
        sup.send_nowait("k", 2)
    stats = sup.statistics()
    assert stats.inbox_sizes[index] == 1
    assert (stats.partitions, stats.inbox_capacity) == (2, 1)
    with trio.move_on_after(1.0) as scope:
        await sup.send("k", 3)  # no partition running: waits for room
    assert scope.cancelled_caught
    sup.close()
    sup.close()  # idempotent
    with pytest.raises(anyio.ClosedResourceError):
        await sup.send("k", 4)


async def test_partition_supervisor_nested(autojump_clock: trio.testing.MockClock) -> None:
    seen: Seen = []
    with PartitionSupervisor[Any](2, _factory(seen), name="replay") as sup:
        root = Supervisor([sup.child_spec()])
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            await sup.send("x", "hello")
            await settle()
            assert sup.statistics().supervisor.children_running == 2
            nursery.cancel_scope.cancel()
    assert seen == [(sup.route("x"), "hello")]
    assert sup.name == "replay"


def test_validation() -> None:
    with pytest.raises(ValueError, match="partitions"):
        PartitionSupervisor[Any](0, _factory([]))
    with pytest.raises(ValueError, match="inbox_size"):
        PartitionSupervisor[Any](1, _factory([]), inbox_size=-1)
