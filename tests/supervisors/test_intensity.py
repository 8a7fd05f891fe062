"""Restart intensity, escalation through nested supervisors, and restart backoff."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
import trio
import trio.testing

from policies import Backoff, RestartPolicy
from supervisors import (
    ChildExited,
    ChildSpec,
    Restart,
    RestartReason,
    Strategy,
    Supervisor,
    SupervisorEscalation,
)
from tests.supervisors.conftest import Boom, Puppets, settle


def _crasher(every_s: float, log: list[float] | None = None) -> Any:
    async def start(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep(every_s)
        if log is not None:
            log.append(trio.current_time())
        raise Boom("tick")

    return start


async def test_exceeded_exactly_at_max_restarts_plus_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Crash every 1 s, 3 restarts allowed per 5 s: crashes 1-3 restart, crash 4 gives up.
    crashes: list[float] = []
    sup = Supervisor(
        [ChildSpec(id="w", start=_crasher(1.0, crashes))], policy=RestartPolicy(3, 5.0)
    )
    with pytest.raises(SupervisorEscalation) as info:
        await sup.run()
    assert crashes == [1.0, 2.0, 3.0, 4.0]
    assert sup.statistics().restarts_total == 3
    assert sup.statistics().escalations_total == 1
    err = info.value
    assert (err.child_id, err.reason, err.restarts, err.max_restarts, err.period_s) == (
        "w",
        "exception",
        4,
        3,
        5.0,
    )
    assert str(err) == (
        "supervisor 'supervisor' gave up: child 'w' ended (exception) and 4 restarts "
        "within 5s exceed max_restarts=3"
    )
    assert isinstance(err.__cause__, Boom)


async def test_not_exceeded_when_spread_wider(autojump_clock: trio.testing.MockClock) -> None:
    # One crash every 2 s: at most 3 restarts in any 5 s window (t, t+2, t+4), never 4.
    crashes: list[float] = []
    sup = Supervisor(
        [ChildSpec(id="w", start=_crasher(2.0, crashes))], policy=RestartPolicy(3, 5.0)
    )
    with trio.move_on_after(101.0):
        await sup.run()
    assert len(crashes) == 50
    assert sup.statistics().escalations_total == 0


async def test_boundary_exactly_period_apart(autojump_clock: trio.testing.MockClock) -> None:
    # max_restarts=1, period 5: crashes exactly 5 s apart never accumulate.
    sup = Supervisor([ChildSpec(id="w", start=_crasher(5.0))], policy=RestartPolicy(1, 5.0))
    with trio.move_on_after(60.5):
        await sup.run()
    assert sup.statistics().restarts_total == 12


async def test_default_policy_is_one_restart_in_five_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sup = Supervisor([ChildSpec(id="w", start=_crasher(4.9))])
    with pytest.raises(SupervisorEscalation):
        await sup.run()
    assert sup.statistics().restarts_total == 1


async def test_run_twice_is_refused(puppets: Puppets) -> None:
    sup = Supervisor([puppets.spec("a")])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        with pytest.raises(RuntimeError, match="already running"):
            await sup.run()
        nursery.cancel_scope.cancel()


async def test_escalation_stops_children_in_reverse_order(puppets: Puppets) -> None:
    sup = Supervisor([puppets.spec(x) for x in "abcd"], Strategy.ONE_FOR_ONE, RestartPolicy(0, 1.0))
    result: list[BaseException] = []

    async def runner() -> None:
        try:
            await sup.run()
        except SupervisorEscalation as exc:
            result.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(runner)
        await settle()
        puppets.journal.events.clear()
        puppets.order("b", "crash")
    assert puppets.journal.of("stop") == ["b", "d", "c", "a"]
    assert isinstance(result[0].__cause__, Boom)
    assert {c.state for c in sup.which_children()} == {"stopped"}


async def test_permanent_exit_escalates_with_child_exited_cause(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def returns(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep(1.0)

    sup = Supervisor([ChildSpec(id="a", start=returns)], policy=RestartPolicy(0, 1.0))
    with pytest.raises(SupervisorEscalation) as info:
        await sup.run()
    assert info.value.reason == "exit"
    assert isinstance(info.value.__cause__, ChildExited)
    assert "returned" in str(info.value.__cause__)


async def test_escalation_through_three_levels(autojump_clock: trio.testing.MockClock) -> None:
    # leaf gives up after 2 crashes; mid restarts leaf once then gives up; root likewise.
    leaf_starts: list[float] = []

    async def worker(*, task_status: trio.TaskStatus[None]) -> None:
        leaf_starts.append(trio.current_time())
        task_status.started()
        await trio.sleep(0.1)
        raise Boom("deep")

    policy = RestartPolicy(1, 60.0)
    leaf = Supervisor([ChildSpec(id="worker", start=worker)], policy=policy, name="leaf")
    mid = Supervisor([leaf.child_spec()], policy=policy, name="mid")
    root = Supervisor([mid.child_spec()], policy=policy, name="root")

    with pytest.raises(SupervisorEscalation) as info:
        await root.run()

    root_err = info.value
    assert (root_err.supervisor, root_err.child_id, root_err.reason) == (
        "root",
        "mid",
        "escalation",
    )
    mid_err = root_err.__cause__
    assert isinstance(mid_err, SupervisorEscalation)
    assert (mid_err.supervisor, mid_err.child_id, mid_err.reason) == ("mid", "leaf", "escalation")
    leaf_err = mid_err.__cause__
    assert isinstance(leaf_err, SupervisorEscalation)
    assert (leaf_err.supervisor, leaf_err.child_id, leaf_err.reason) == (
        "leaf",
        "worker",
        "exception",
    )
    assert isinstance(leaf_err.__cause__, Boom)
    # root: 2 runs of mid; each mid run: 2 runs of leaf; each leaf run: 2 worker starts.
    assert len(leaf_starts) == 8
    assert [r.reason for r in root.restart_history()] == [RestartReason.ESCALATION]
    assert root.statistics().escalations_total == 1
    assert mid.statistics().escalations_total == 2
    assert leaf.statistics().escalations_total == 4


async def test_backoff_delays_restarts(autojump_clock: trio.testing.MockClock) -> None:
    starts: list[float] = []

    async def worker(*, task_status: trio.TaskStatus[None]) -> None:
        starts.append(trio.current_time())
        task_status.started()
        raise Boom

    policy = RestartPolicy(10, 1000.0, Backoff(min_s=1.0, max_s=4.0, multiplier=2.0))
    sup = Supervisor([ChildSpec(id="w", start=worker)], policy=policy)
    with pytest.raises(SupervisorEscalation):
        await sup.run()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]


async def test_backoff_resets_after_a_healthy_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []
    uptimes = iter([0.0, 0.0, 10.0, 0.0])

    async def worker(*, task_status: trio.TaskStatus[None]) -> None:
        starts.append(trio.current_time())
        task_status.started()
        await trio.sleep(next(uptimes, 1000.0))
        raise Boom

    policy = RestartPolicy(10, 5.0, Backoff(min_s=1.0, max_s=100.0))
    sup = Supervisor([ChildSpec(id="w", start=worker)], policy=policy)
    with trio.move_on_after(30.0):
        await sup.run()
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    # 1 s, 2 s backoff; then it ran 10 s (healthy) so backoff is back to 1 s.
    assert gaps == [1.0, 2.0, 11.0, 2.0]


async def test_backoff_jitter_uses_injected_random(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []

    async def worker(*, task_status: trio.TaskStatus[None]) -> None:
        starts.append(trio.current_time())
        task_status.started()
        raise Boom

    backoff = Backoff(min_s=1.0, max_s=1.0, jitter=0.5)
    sup = Supervisor(
        [ChildSpec(id="w", start=worker)],
        policy=RestartPolicy(2, 1000.0, backoff),
        random=random.Random(3),
    )
    with pytest.raises(SupervisorEscalation):
        await sup.run()
    expected_rng = random.Random(3)
    expected = [backoff.delay(0, expected_rng.random()), backoff.delay(1, expected_rng.random())]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx(expected)


async def test_escalation_reason_when_nested_supervisor_gives_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inner = Supervisor(
        [ChildSpec(id="w", start=_crasher(1.0))], policy=RestartPolicy(0, 1.0), name="inner"
    )
    outer = Supervisor(
        [inner.child_spec(restart=Restart.PERMANENT)], policy=RestartPolicy(1, 100.0)
    )
    with pytest.raises(SupervisorEscalation) as info:
        await outer.run()
    assert info.value.reason == "escalation"
    failure = outer.which_children()[0].last_failure
    assert failure is not None
    assert failure.reason is RestartReason.ESCALATION
    assert failure.error_type == "SupervisorEscalation"


async def test_transient_nested_supervisor_that_gave_up_stays_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # OTP: a supervisor that gives up exits with `shutdown`, which does not restart a
    # transient child (this test used to assert the opposite).
    inner = Supervisor(
        [ChildSpec(id="w", start=_crasher(1.0))], policy=RestartPolicy(0, 1.0), name="inner"
    )
    outer = Supervisor(
        [inner.child_spec(restart=Restart.TRANSIENT)], policy=RestartPolicy(1, 100.0)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(outer.run)
        with trio.fail_after(10):
            down = await outer.monitor(inner.name).wait()
        assert isinstance(down.error, SupervisorEscalation)
        assert outer.statistics().restarts_total == 0
        failure = outer.which_children()[0].last_failure
        assert failure is not None and failure.reason is RestartReason.ESCALATION
        nursery.cancel_scope.cancel()
