"""Bounded stop: every child is asked to stop, and a stop returns by its deadline."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from policies import ValidationFailed
from supervisors import (
    AutoShutdown,
    ChildDown,
    ChildSpec,
    ChildState,
    DownReason,
    DynamicSupervisor,
    Supervisor,
    shutdown_grace,
)
from tests.supervisors.conftest import Telemetry


def _journal() -> tuple[list[tuple[str, str, float]], Any]:
    events: list[tuple[str, str, float]] = []

    def child(child_id: str, cleanup: float = 0.0) -> ChildSpec:
        async def start(*, task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                events.append(("stopping", child_id, trio.current_time()))
                if cleanup:
                    with shutdown_grace():
                        await trio.sleep(cleanup)
                events.append(("stopped", child_id, trio.current_time()))

        return ChildSpec(id=child_id, start=start)

    return events, child


async def test_issue_repro_inner_deadline_still_stops_every_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Issue 12, item 1: the inner supervisor's 0.5 s deadline used to cut its stop walk
    # before "a" was asked to stop, and the root hung forever.
    events, child = _journal()
    inner = Supervisor([child("a"), child("b", cleanup=2.0)], name="inner")
    root = Supervisor([inner.child_spec("inner", shutdown_timeout=0.5)], name="root")
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            nursery.cancel_scope.cancel()
    assert trio.current_time() == 0.5
    # b (stopped first) had its cleanup cut at the inner deadline; a, not reached by the
    # walk, was still asked to stop; both unwound in time, so nothing was abandoned.
    assert events[0] == ("stopping", "b", 0.0)
    assert sorted(events[1:]) == [
        ("stopped", "a", 0.5),
        ("stopped", "b", 0.5),
        ("stopping", "a", 0.5),
    ]
    assert inner.statistics().abandoned == () and root.statistics().abandoned == ()


async def test_child_ignoring_cancellation_is_abandoned_under_move_on_after(
    autojump_clock: trio.testing.MockClock, telemetry: Telemetry
) -> None:
    # Issue 12, item 2: a child that catches Cancelled and keeps going.
    stop_ignored = trio.Event()

    async def deaf(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        while not stop_ignored.is_set():
            try:
                await trio.sleep(1.0)
            except trio.Cancelled:
                # Swallowed; the pause only keeps the mock clock moving (a bare retry
                # would spin without letting virtual time pass).
                with trio.CancelScope(shield=True):
                    await trio.sleep(0.25)

    downs: list[ChildDown] = []
    sup = Supervisor(
        [ChildSpec(id="deaf", start=deaf, shutdown_timeout=2.0, on_down=downs.append)],
        kill_timeout=1.0,
        **telemetry.kwargs(),
    )
    with trio.fail_after(10):
        with trio.move_on_after(1.0):
            await sup.run()
    assert trio.current_time() == 4.0
    assert downs == [ChildDown("deaf", DownReason.ABANDONED)]
    stats = sup.statistics()
    assert (stats.abandoned_total, stats.abandoned) == (1, ("deaf",))
    assert [s.name for s in telemetry.spans.get_finished_spans()] == ["garrison.supervisor.abandon"]
    assert telemetry.counter("garrison.supervisor.abandoned")[0][1] == 1
    stop_ignored.set()  # let the detached task end before the test's loop does


async def test_stop_timeout_bounds_the_whole_tree(autojump_clock: trio.testing.MockClock) -> None:
    events, child = _journal()
    sup = Supervisor([child("a", cleanup=3.0), child("b", cleanup=3.0)], stop_timeout=4.0)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            nursery.cancel_scope.cancel()
    assert trio.current_time() == 4.0
    # b (stopped first) finished its 3 s cleanup; a was cut at the tree deadline.
    assert events == [
        ("stopping", "b", 0.0),
        ("stopped", "b", 3.0),
        ("stopping", "a", 3.0),
        ("stopped", "a", 4.0),
    ]


async def test_shutdown_timeout_zero_is_brutal_and_quiet(
    autojump_clock: trio.testing.MockClock, sup_logs: pytest.LogCaptureFixture
) -> None:
    events, child = _journal()
    spec = child("a", cleanup=5.0)
    sup = Supervisor([ChildSpec(id="a", start=spec.start, shutdown_timeout=0.0)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        nursery.cancel_scope.cancel()
    assert trio.current_time() == 0.0
    assert [(k, c) for k, c, _ in events] == [("stopping", "a"), ("stopped", "a")]
    # Issue 12, item 5: no "still running after being stopped" warning any more.
    assert [r for r in sup_logs.records if r.levelno >= logging.WARNING] == []
    assert sup.statistics().abandoned == ()


async def test_terminate_child_is_bounded(autojump_clock: trio.testing.MockClock) -> None:
    release = trio.Event()

    async def stubborn(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        with trio.CancelScope(shield=True):
            await release.wait()

    sup = DynamicSupervisor(kill_timeout=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.start_child(ChildSpec(id="s", start=stubborn, shutdown_timeout=1.0))
        monitor = sup.monitor("s")
        with trio.fail_after(5):
            await sup.terminate_child("s")
        assert trio.current_time() == 1.5
        assert monitor.down == ChildDown("s", DownReason.ABANDONED)
        assert sup.which_children() == []
        release.set()
        nursery.cancel_scope.cancel()


def test_stop_bounds_are_validated() -> None:
    with pytest.raises(ValidationFailed) as info:
        Supervisor([], stop_timeout=-1.0)
    assert info.value.field == "stop_timeout"
    with pytest.raises(ValidationFailed) as info:
        DynamicSupervisor(kill_timeout=float("inf"))
    assert info.value.field == "kill_timeout"
    assert (Supervisor([]).statistics().abandoned_total, Supervisor([]).statistics().abandoned) == (
        0,
        (),
    )


async def test_significant_child_needs_auto_shutdown() -> None:
    async def start(*, task_status: Any) -> None:
        task_status.started()

    spec = ChildSpec(id="s", start=start, restart="transient", significant=True)  # type: ignore[arg-type]
    # OTP: {bad_combination, [{auto_shutdown, never}, {significant, true}]}.
    with pytest.raises(ValidationFailed) as info:
        Supervisor([spec])
    assert info.value.field == "significant"
    Supervisor([spec], auto_shutdown=AutoShutdown.ANY_SIGNIFICANT)
    sup = DynamicSupervisor()
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        with pytest.raises(ValidationFailed):
            await sup.start_child(spec)
        nursery.cancel_scope.cancel()


async def test_states_during_stop(autojump_clock: trio.testing.MockClock) -> None:
    _, child = _journal()
    sup = Supervisor([child("a", cleanup=1.0)])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        nursery.cancel_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert [c.state for c in sup.which_children()] == [ChildState.STOPPING]
    assert [c.state for c in sup.which_children()] == [ChildState.STOPPED]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"id": ""}, "id"),
        ({"shutdown_timeout": -1.0}, "shutdown_timeout"),
        ({"heartbeat_timeout": 0.0}, "heartbeat_timeout"),
        ({"heartbeat_timeout": float("inf")}, "heartbeat_timeout"),
        ({"significant": True}, "significant"),
    ],
)
def test_child_spec_bounds_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    async def start(*, task_status: Any) -> None:
        task_status.started()

    with pytest.raises(ValidationFailed) as info:
        ChildSpec(**{"id": "x", "start": start, **kwargs})
    assert info.value.field == field


async def test_base_exception_from_a_child_stops_all_and_is_reraised() -> None:
    events, child = _journal()
    go = trio.Event()

    async def exiting(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await go.wait()
        raise SystemExit(3)

    sup = Supervisor([child("a"), ChildSpec(id="x", start=exiting)])
    async with trio.open_nursery() as nursery:

        async def trigger() -> None:
            await trio.testing.wait_all_tasks_blocked()
            go.set()

        nursery.start_soon(trigger)
        with trio.fail_after(5), pytest.raises(SystemExit):
            await sup.run()
    assert [(k, c) for k, c, _ in events] == [("stopping", "a"), ("stopped", "a")]


async def test_random_factor_draws_from_the_injected_random(
    autojump_clock: trio.testing.MockClock,
) -> None:
    import random as random_module

    from policies import Backoff, RestartPolicy

    crashes = 0
    up = trio.Event()

    async def flaky(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal crashes
        task_status.started()
        up.set()
        if crashes == 0:
            crashes += 1
            raise RuntimeError("once")
        await trio.sleep_forever()

    class Fixed(random_module.Random):
        def random(self) -> float:
            return 0.5

    policy = RestartPolicy(5, 100.0, Backoff(min_s=2.0, max_s=2.0, random_factor=1.0))
    sup = Supervisor([ChildSpec(id="f", start=flaky)], policy=policy, random=Fixed())
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        up = trio.Event()
        with trio.fail_after(10):
            await up.wait()
        assert trio.current_time() == 3.0  # 2 s * (1 + 0.5 * 1.0)
        nursery.cancel_scope.cancel()
