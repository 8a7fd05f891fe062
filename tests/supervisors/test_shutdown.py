"""Stopping: reverse start order, shutdown timeouts, start failures, auto-shutdown."""

from __future__ import annotations

import logging
import math

import pytest
import trio
import trio.testing

from policies import RestartPolicy
from supervisors import (
    AutoShutdown,
    ChildHung,
    ChildSpec,
    ChildStartError,
    ChildState,
    Restart,
    Supervisor,
)
from tests.supervisors.conftest import Boom, Puppets, settle


async def test_cancel_stops_children_in_reverse_start_order(puppets: Puppets) -> None:
    sup = Supervisor([puppets.spec(x) for x in "abcde"])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        assert sup.statistics().children_running == 5
        nursery.cancel_scope.cancel()
    assert puppets.journal.events == [
        *[("start", x) for x in "abcde"],
        *[("stop", x) for x in "edcba"],
    ]
    assert {c.state for c in sup.which_children()} == {ChildState.STOPPED}
    assert not sup.statistics().running


async def test_nested_supervisors_stop_depth_first_in_reverse(puppets: Puppets) -> None:
    inner = Supervisor([puppets.spec("i1"), puppets.spec("i2")], name="inner")
    outer = Supervisor([puppets.spec("o1"), inner.child_spec(), puppets.spec("o3")])
    async with trio.open_nursery() as nursery:
        await nursery.start(outer.run)
        assert puppets.journal.of("start") == ["o1", "i1", "i2", "o3"]
        nursery.cancel_scope.cancel()
    assert puppets.journal.of("stop") == ["o3", "i2", "i1", "o1"]


async def test_cleanup_within_shutdown_timeout_completes(
    autojump_clock: trio.testing.MockClock, puppets: Puppets
) -> None:
    puppets.cleanup_s = {"slow": 3.0}
    sup = Supervisor([puppets.spec("fast"), puppets.spec("slow", shutdown_timeout=5.0)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        nursery.cancel_scope.cancel()
    assert puppets.journal.of("stop") == ["slow", "fast"]
    assert trio.current_time() == 3.0


async def test_cleanup_past_shutdown_timeout_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from supervisors import shutdown_grace

    log: list[tuple[str, float]] = []

    async def child(name: str, cleanup_s: float, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with shutdown_grace():
                try:
                    await trio.sleep(cleanup_s)
                    log.append((f"{name} cleaned", trio.current_time()))
                except trio.Cancelled:
                    log.append((f"{name} cut", trio.current_time()))
                    raise

    from functools import partial

    sup = Supervisor(
        [
            ChildSpec(id="a", start=partial(child, "a", 1.0), shutdown_timeout=2.0),
            ChildSpec(id="b", start=partial(child, "b", 10.0), shutdown_timeout=4.0),
            ChildSpec(id="c", start=partial(child, "c", 10.0), shutdown_timeout=0.0),
        ]
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        nursery.cancel_scope.cancel()
    # c (brutal kill) at once, then b cut at its 4 s, then a cleans up within its 2 s.
    assert log == [("c cut", 0.0), ("b cut", 4.0), ("a cleaned", 5.0)]


async def test_grace_entered_before_stop_gets_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from supervisors import shutdown_grace

    finished: list[float] = []

    async def child(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        with shutdown_grace():  # a unit of work that should finish rather than be dropped
            await trio.sleep(3.0)
            finished.append(trio.current_time())
        await trio.sleep_forever()

    sup = Supervisor([ChildSpec(id="w", start=child, shutdown_timeout=10.0)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert finished == [3.0]


async def test_child_shielding_itself_is_abandoned_after_its_deadline(
    autojump_clock: trio.testing.MockClock, sup_logs: pytest.LogCaptureFixture
) -> None:
    # This test used to expect the stop to wait for the shielded cleanup (5 s); a stop is
    # now bounded by shutdown_timeout + kill_timeout and the child is abandoned.
    ended: list[float] = []

    async def stubborn(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(5.0)
            ended.append(trio.current_time())

    sup = Supervisor([ChildSpec(id="s", start=stubborn, shutdown_timeout=1.0)], kill_timeout=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        nursery.cancel_scope.cancel()
    assert trio.current_time() == 1.5
    assert sup.statistics().abandoned == ("s",)
    [record] = [r for r in sup_logs.records if "abandoned" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.child_id == "s"
    # The abandoned task goes on in the background and ends on its own.
    await trio.sleep(10)
    assert ended == [5.0]


async def test_failed_initial_start_stops_started_children(puppets: Puppets) -> None:
    async def broken(*, task_status: trio.TaskStatus[None]) -> None:
        raise Boom("cannot init")

    sup = Supervisor([puppets.spec("a"), puppets.spec("b"), ChildSpec(id="x", start=broken)])
    with pytest.raises(ChildStartError) as info:
        await sup.run()
    assert info.value.child_id == "x"
    assert isinstance(info.value.__cause__, Boom)
    assert puppets.journal.events == [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")]


async def test_child_returning_before_started_is_a_start_error() -> None:
    async def lazy(*, task_status: trio.TaskStatus[None]) -> None:
        return None

    sup = Supervisor([ChildSpec(id="x", start=lazy)])
    with pytest.raises(ChildStartError, match="'x' failed to start") as info:
        await sup.run()
    assert "before calling task_status.started()" in str(info.value.__cause__)


async def test_hang_during_init_is_a_start_error(autojump_clock: trio.testing.MockClock) -> None:
    async def stuck(*, task_status: trio.TaskStatus[None]) -> None:
        await trio.sleep_forever()

    sup = Supervisor([ChildSpec(id="x", start=stuck, heartbeat_timeout=2.0)])
    with pytest.raises(ChildStartError) as info:
        await sup.run()
    assert isinstance(info.value.__cause__, ChildHung)
    assert trio.current_time() == 2.0


async def test_supervisor_start_returns_only_when_children_initialised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ready: list[str] = []

    async def slow(*, task_status: trio.TaskStatus[None]) -> None:
        await trio.sleep(2.0)
        ready.append("slow")
        task_status.started()
        await trio.sleep_forever()

    inner = Supervisor([ChildSpec(id="slow", start=slow)], name="inner")
    outer = Supervisor([inner.child_spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(outer.run)
        assert ready == ["slow"]
        assert trio.current_time() == 2.0
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("mode", "ends_after"),
    [(AutoShutdown.ANY_SIGNIFICANT, ["t1"]), (AutoShutdown.ALL_SIGNIFICANT, ["t1", "t2"])],
)
async def test_auto_shutdown(mode: AutoShutdown, ends_after: list[str], puppets: Puppets) -> None:
    sup = Supervisor(
        [
            puppets.spec("w"),
            puppets.spec("t1", restart=Restart.TEMPORARY, significant=True),
            puppets.spec("t2", restart=Restart.TRANSIENT, significant=True),
        ],
        auto_shutdown=mode,
    )
    returned: list[bool] = []

    async def runner() -> None:
        await sup.run()
        returned.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(runner)
        await settle()
        for cid in ends_after:
            assert not returned
            puppets.order(cid, "exit")
            await settle()
    assert returned == [True]
    assert puppets.journal.of("stop")[-1] == "w"


async def test_auto_shutdown_ignores_non_significant_and_restarted(puppets: Puppets) -> None:
    sup = Supervisor(
        [
            puppets.spec("w", restart=Restart.TEMPORARY),
            puppets.spec("t", restart=Restart.TRANSIENT, significant=True),
        ],
        policy=RestartPolicy(5, 1.0),
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        puppets.order("w", "exit")  # not significant
        puppets.order("t", "crash")  # significant but restarted
        await settle()
        assert sup.statistics().running
        nursery.cancel_scope.cancel()


def test_child_spec_validation() -> None:
    async def noop(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()

    with pytest.raises(ValueError, match="empty"):
        ChildSpec(id="", start=noop)
    with pytest.raises(ValueError, match="shutdown_timeout"):
        ChildSpec(id="a", start=noop, shutdown_timeout=-1.0)
    with pytest.raises(ValueError, match="heartbeat_timeout"):
        ChildSpec(id="a", start=noop, heartbeat_timeout=0.0)
    with pytest.raises(ValueError, match="heartbeat_timeout"):
        ChildSpec(id="a", start=noop, heartbeat_timeout=math.inf)
    with pytest.raises(ValueError, match="significant"):
        ChildSpec(id="a", start=noop, significant=True)


def test_supervisor_validation(puppets: Puppets) -> None:
    from supervisors import DuplicateChild

    with pytest.raises(DuplicateChild):
        Supervisor([puppets.spec("a"), puppets.spec("a")])
    with pytest.raises(ValueError, match="history_cap"):
        Supervisor([], history_cap=0)


async def test_started_twice_is_an_error() -> None:
    errors: list[BaseException] = []

    async def twice(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        try:
            task_status.started()
        except RuntimeError as exc:
            errors.append(exc)
        await trio.sleep_forever()

    sup = Supervisor([ChildSpec(id="t", start=twice)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        nursery.cancel_scope.cancel()
    assert len(errors) == 1


async def test_empty_supervisor_runs_until_cancelled() -> None:
    sup = Supervisor([])
    with trio.move_on_after(0):
        await sup.run()
    assert sup.which_children() == []
