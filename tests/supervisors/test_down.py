"""Death watch: ChildSpec.on_down and monitor() report each child life's end exactly once."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from policies import RestartPolicy
from supervisors import (
    ChildDown,
    ChildExited,
    ChildHung,
    ChildStartError,
    DownReason,
    DynamicSupervisor,
    PartitionSupervisor,
    Restart,
    Strategy,
    Supervisor,
    SupervisorEscalation,
)
from tests.supervisors.conftest import Boom, Puppets, settle


class Downs:
    """An on_down hook that records what it was told."""

    def __init__(self) -> None:
        self.seen: list[ChildDown] = []

    def __call__(self, down: ChildDown) -> None:
        self.seen.append(down)

    def reasons(self) -> list[tuple[str, DownReason]]:
        return [(d.child_id, d.reason) for d in self.seen]


async def test_crash_then_restart_is_not_a_down(puppets: Puppets) -> None:
    downs = Downs()
    sup = Supervisor([puppets.spec("a", on_down=downs)], policy=RestartPolicy(max_restarts=5))
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        monitor = sup.monitor("a")
        puppets.order("a", "crash")
        await settle()
        assert sup.statistics().restarts_total == 1
        assert downs.seen == [] and monitor.down is None
        nursery.cancel_scope.cancel()
    assert downs.reasons() == [("a", DownReason.SHUTDOWN)]
    with trio.fail_after(1):
        assert await monitor.wait() == ChildDown("a", DownReason.SHUTDOWN, None)


@pytest.mark.parametrize(
    ("restart", "order", "reason"),
    [
        (Restart.TRANSIENT, "exit", DownReason.NORMAL),
        (Restart.TEMPORARY, "exit", DownReason.NORMAL),
        (Restart.TEMPORARY, "crash", DownReason.CRASHED),
    ],
)
async def test_end_without_restart_is_a_down(
    restart: Restart, order: str, reason: DownReason, puppets: Puppets
) -> None:
    downs = Downs()
    sup = Supervisor([puppets.spec("a", restart=restart, on_down=downs)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        monitor = sup.monitor("a")
        puppets.order("a", order)
        with trio.fail_after(1):
            down = await monitor.wait()
        assert down.reason is reason
        assert isinstance(down.error, Boom) if order == "crash" else down.error is None
        assert downs.seen == [down]
        # Taken after the end, a monitor fires at once: with the same down while the
        # child is listed, with noproc once it is deleted (temporary, as in OTP).
        listed = [c.id for c in sup.which_children()]
        if restart is Restart.TEMPORARY:
            assert listed == [] and sup.monitor("a").down == ChildDown("a", DownReason.NOPROC)
        else:
            assert listed == ["a"] and sup.monitor("a").down == down
        nursery.cancel_scope.cancel()
    assert downs.seen == [down]  # the supervisor's stop does not report it twice


async def test_temporary_hang_is_a_crash_with_child_hung(
    autojump_clock: trio.testing.MockClock,
) -> None:
    downs = Downs()

    async def silent(*, task_status: Any) -> None:
        task_status.started()
        await trio.sleep_forever()

    from supervisors import ChildSpec

    spec = ChildSpec(
        id="a", start=silent, restart=Restart.TEMPORARY, heartbeat_timeout=1.0, on_down=downs
    )
    sup = Supervisor([spec])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        with trio.fail_after(5):
            down = await sup.monitor("a").wait()
        nursery.cancel_scope.cancel()
    assert down.reason is DownReason.CRASHED and isinstance(down.error, ChildHung)


async def test_escalation_reports_the_culprit_crashed_and_siblings_shutdown(
    puppets: Puppets,
) -> None:
    downs = Downs()
    sup = Supervisor(
        [puppets.spec("a", on_down=downs), puppets.spec("b", on_down=downs)],
        policy=RestartPolicy(max_restarts=0),
    )

    async def crash_a() -> None:
        await settle()
        puppets.order("a", "crash")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(crash_a)
        with pytest.raises(SupervisorEscalation):
            await sup.run()
    assert downs.reasons() == [("a", DownReason.CRASHED), ("b", DownReason.SHUTDOWN)]
    assert isinstance(downs.seen[0].error, Boom)


async def test_permanent_exit_past_intensity_is_normal(puppets: Puppets) -> None:
    downs = Downs()
    sup = Supervisor([puppets.spec("a", on_down=downs)], policy=RestartPolicy(max_restarts=0))

    async def exit_a() -> None:
        await settle()
        puppets.order("a", "exit")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(exit_a)
        with pytest.raises(SupervisorEscalation) as info:
            await sup.run()
    assert isinstance(info.value.__cause__, ChildExited)
    assert downs.reasons() == [("a", DownReason.NORMAL)]


async def test_failed_initial_start_is_a_crash() -> None:
    downs = Downs()

    async def broken(*, task_status: Any) -> None:
        raise Boom("init")

    from supervisors import ChildSpec

    sup = Supervisor([ChildSpec(id="a", start=broken, on_down=downs)])
    with pytest.raises(ChildStartError):
        await sup.run()
    assert downs.reasons() == [("a", DownReason.CRASHED)]


async def test_transient_child_supervisor_that_gave_up_is_down_shutdown(
    puppets: Puppets,
) -> None:
    downs = Downs()
    inner = Supervisor([puppets.spec("x")], policy=RestartPolicy(max_restarts=0), name="inner")
    outer = Supervisor(
        [inner.child_spec("inner", restart=Restart.TRANSIENT).__replace__(on_down=downs)],
        policy=RestartPolicy(max_restarts=5),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(outer.run)
        puppets.order("x", "crash")
        await settle()
        # OTP: a supervisor that gave up exits with `shutdown`; a transient child that
        # exits with `shutdown` is not restarted.
        assert outer.statistics().restarts_total == 0
        assert puppets.journal.of("start") == ["x"]
        nursery.cancel_scope.cancel()
    assert downs.reasons() == [("inner", DownReason.SHUTDOWN)]
    assert isinstance(downs.seen[0].error, SupervisorEscalation)


async def test_on_down_that_raises_is_logged(
    puppets: Puppets, sup_logs: pytest.LogCaptureFixture
) -> None:
    def bad(down: ChildDown) -> None:
        raise RuntimeError("hook")

    sup = Supervisor([puppets.spec("a", restart=Restart.TEMPORARY, on_down=bad)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        monitor = sup.monitor("a")
        puppets.order("a", "exit")
        with trio.fail_after(1):
            assert (await monitor.wait()).reason is DownReason.NORMAL
        assert sup.statistics().running
        nursery.cancel_scope.cancel()
    errors = [r for r in sup_logs.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "supervisor supervisor: on_down hook of child a raised"
    ]


async def test_unknown_or_never_started_child_monitor_is_noproc(puppets: Puppets) -> None:
    sup = Supervisor([puppets.spec("a")])
    assert sup.monitor("nope").down == ChildDown("nope", DownReason.NOPROC)
    assert sup.monitor("a").down == ChildDown("a", DownReason.NOPROC)


async def test_group_restart_stops_temporary_siblings_for_good(puppets: Puppets) -> None:
    downs = Downs()
    sup = Supervisor(
        [
            puppets.spec("a", on_down=downs),
            puppets.spec("t", restart=Restart.TEMPORARY, on_down=downs),
        ],
        Strategy.ONE_FOR_ALL,
        policy=RestartPolicy(max_restarts=5),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        puppets.order("a", "crash")
        await settle()
        # OTP deletes temporary children that a group restart stopped.
        assert [c.id for c in sup.which_children()] == ["a"]
        assert downs.reasons() == [("t", DownReason.SHUTDOWN)]
        nursery.cancel_scope.cancel()
    assert downs.reasons() == [("t", DownReason.SHUTDOWN), ("a", DownReason.SHUTDOWN)]


async def test_dynamic_terminate_and_monitor(puppets: Puppets) -> None:
    downs = Downs()
    sup = DynamicSupervisor()
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.start_child(puppets.spec("a", on_down=downs))
        await sup.start_child(puppets.spec("b", on_down=downs))
        monitor = sup.monitor("a")
        await sup.terminate_child("a")
        assert monitor.down == ChildDown("a", DownReason.SHUTDOWN)
        assert sup.monitor("a").down == ChildDown("a", DownReason.NOPROC)
        nursery.cancel_scope.cancel()
    assert downs.reasons() == [("a", DownReason.SHUTDOWN), ("b", DownReason.SHUTDOWN)]


async def test_dynamic_failed_start_is_a_crash() -> None:
    downs = Downs()

    async def broken(*, task_status: Any) -> None:
        raise Boom("init")

    from supervisors import ChildSpec

    sup = DynamicSupervisor()
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        with pytest.raises(ChildStartError):
            await sup.start_child(ChildSpec(id="a", start=broken, on_down=downs))
        nursery.cancel_scope.cancel()
    assert downs.reasons() == [("a", DownReason.CRASHED)]


async def test_partition_monitor() -> None:
    downs = Downs()

    def child(index: int, inbox: Any) -> Any:
        from supervisors import ChildSpec

        async def start(*, task_status: Any) -> None:
            task_status.started()
            await trio.sleep_forever()

        return ChildSpec(id=f"p{index}", start=start, on_down=downs)

    with PartitionSupervisor(2, child) as parts:
        async with trio.open_nursery() as nursery:
            await nursery.start(parts.run)
            monitor = parts.monitor("p1")
            nursery.cancel_scope.cancel()
    assert monitor.down == ChildDown("p1", DownReason.SHUTDOWN)
    assert sorted(downs.reasons()) == [("p0", DownReason.SHUTDOWN), ("p1", DownReason.SHUTDOWN)]
