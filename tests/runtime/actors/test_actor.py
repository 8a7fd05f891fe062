"""Actors under a supervisor: cast/call, call timeouts, crash and hang recovery with the
mailbox kept, handler timeouts, checkpoints restored after a restart (real SQLite store)."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from policies import PressureAction, PressurePolicy, RestartPolicy
from runtime import PressureRejected, open_store
from runtime.actors import (
    Actor,
    ActorContext,
    Behaviour,
    CallFailed,
    CallTimeout,
    HandlerTimeout,
    PressureTransition,
    from_handler,
)
from supervisors import RestartReason, Supervisor, SupervisorEscalation


class Boom(Exception):
    pass


class Echo(Behaviour[Any, Any]):
    """Replies with the message; obeys a few scripted messages."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def handle(self, ctx: ActorContext, message: Any) -> Any:
        self.log.append((ctx.incarnation, message))
        if message == "boom":
            raise Boom("scripted crash")
        if message == "hang":
            await trio.sleep_forever()
        if isinstance(message, tuple) and message[0] == "sleep":
            await trio.sleep(message[1])
        return message


def echo(log: list[Any], **kwargs: Any) -> Actor[Any, Any]:
    return Actor("echo", lambda: Echo(log), **kwargs)


async def test_cast_and_call() -> None:
    log: list[Any] = []
    actor = echo(log)
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        await actor.cast("a")
        actor.cast_nowait("b")
        assert await actor.call("c") == "c"
        tg.cancel_scope.cancel()
    assert log == [(1, "a"), (1, "b"), (1, "c")]
    stats = actor.statistics()
    assert (stats.handled, stats.calls, stats.failed, stats.incarnations) == (3, 1, 0, 1)
    assert not stats.running and stats.mailbox.name == "echo"


async def test_call_timeout_and_abandoned_requests_are_skipped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []
    actor = echo(log, call_timeout=1.0)
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        await actor.cast(("sleep", 5.0))
        start = trio.current_time()
        with pytest.raises(CallTimeout) as info:
            await actor.call("late")  # queued behind the sleeper; gives up at 1 s
        assert trio.current_time() - start == pytest.approx(1.0)
        assert isinstance(info.value, TimeoutError)
        assert (info.value.actor, info.value.timeout) == ("echo", 1.0)
        assert await actor.call("next", timeout=10.0) == "next"
        tg.cancel_scope.cancel()
    assert [m for _, m in log] == [("sleep", 5.0), "next"]
    stats = actor.statistics()
    assert (stats.call_timeouts, stats.skipped, stats.calls) == (1, 1, 2)


async def test_crash_restarts_and_keeps_the_mailbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []
    actor = echo(log)
    sup = Supervisor([actor.child_spec()], policy=RestartPolicy(5, 10.0))
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await actor.cast("boom")
        for i in range(3):  # queued while the first incarnation crashes
            await actor.cast(i)
        with pytest.raises(CallFailed) as info:
            await actor.call("boom")
        assert isinstance(info.value.__cause__, Boom)
        assert info.value.error_type == "Boom"
        assert await actor.call("after") == "after"
        tg.cancel_scope.cancel()
    assert log == [(1, "boom"), (2, 0), (2, 1), (2, 2), (2, "boom"), (3, "after")]
    assert [r.reason for r in sup.restart_history()] == [RestartReason.EXCEPTION] * 2
    stats = actor.statistics()
    assert (stats.incarnations, stats.failed, stats.handled) == (3, 2, 4)


async def test_hang_is_detected_and_restarted(autojump_clock: trio.testing.MockClock) -> None:
    log: list[Any] = []
    actor = echo(log, heartbeat_timeout=2.0, call_timeout=60.0)
    sup = Supervisor([actor.child_spec()], policy=RestartPolicy(5, 60.0))
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await trio.sleep(30)  # idle for 15 heartbeat periods: not a hang
        assert actor.statistics().incarnations == 1
        for _ in range(3):  # slow (within 7/8 of the timeout) but alive, back to back
            assert await actor.call(("sleep", 1.75)) == ("sleep", 1.75)
        start = trio.current_time()
        with pytest.raises(CallFailed) as info:
            await actor.call("hang")
        waited = trio.current_time() - start
        assert 1.75 <= waited <= 2.25 + 1e-6  # between 7/8 and 9/8 heartbeat timeouts
        assert info.value.error_type is None  # stopped, not raised
        assert await actor.call("alive") == "alive"
        tg.cancel_scope.cancel()
    assert [r.reason for r in sup.restart_history()] == [RestartReason.HANG]
    assert actor.statistics().incarnations == 2


async def test_handler_timeout_is_a_failure_with_reason_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []
    actor = echo(log, handler_timeout=3.0, call_timeout=60.0)
    sup = Supervisor([actor.child_spec()], policy=RestartPolicy(5, 60.0))
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        assert await actor.call(("sleep", 2.9)) == ("sleep", 2.9)
        start = trio.current_time()
        with pytest.raises(CallFailed) as info:
            await actor.call(("sleep", 10.0))
        assert trio.current_time() - start == pytest.approx(3.0)
        cause = info.value.__cause__
        assert isinstance(cause, HandlerTimeout) and cause.reason == "timeout"
        assert info.value.error_type == "HandlerTimeout"
        await actor.cast(("sleep", 5.0))  # a cast times out too
        assert await actor.call("ok") == "ok"
        tg.cancel_scope.cancel()
    history = sup.restart_history()
    assert [r.error_type for r in history] == ["HandlerTimeout"] * 2
    assert actor.statistics().failed == 2


async def test_handler_timeout_without_supervisor_raises_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def slow(ctx: ActorContext, message: float) -> None:
        await trio.sleep(message)

    actor: Actor[float, None] = Actor("slow", from_handler(slow), handler_timeout=0.5)
    actor.cast_nowait(10.0)
    with pytest.raises(HandlerTimeout):
        await actor.run()


async def test_checkpoint_is_restored_after_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    class Counter(Behaviour[str, int]):
        def __init__(self) -> None:
            self.count = 0

        async def started(self, ctx: ActorContext) -> None:
            if ctx.restored is not None:
                (self.count,) = struct.unpack("!q", ctx.restored)

        async def handle(self, ctx: ActorContext, message: str) -> int:
            if message == "crash":
                raise Boom("crash")
            self.count += 1
            await ctx.checkpoint(struct.pack("!q", self.count))
            return self.count

    async with open_store(tmp_path / "x.db") as store:
        actor: Actor[str, int] = Actor("counter", Counter, store=store)
        sup = Supervisor([actor.child_spec()], policy=RestartPolicy(5, 10.0))
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            assert [await actor.call("add") for _ in range(3)] == [1, 2, 3]
            with pytest.raises(CallFailed):
                await actor.call("crash")
            assert await actor.call("add") == 4  # restored 3, then one more
            tg.cancel_scope.cancel()
        assert await store.load_checkpoint("counter") == struct.pack("!q", 4)
        # A brand-new actor object with the same name (a new process) gets it back too.
        again: Actor[str, int] = Actor("counter", Counter, store=store)
        async with anyio.create_task_group() as tg:
            await tg.start(again.run)
            assert await again.call("add") == 5
            tg.cancel_scope.cancel()


async def test_checkpoint_without_a_store_is_an_error() -> None:
    async def save(ctx: ActorContext, message: bytes) -> None:
        await ctx.checkpoint(message)

    actor: Actor[bytes, None] = Actor("nostore", from_handler(save))
    async with anyio.create_task_group() as tg:
        await tg.start(Supervisor([actor.child_spec()]).run)
        with pytest.raises(CallFailed) as info:
            await actor.call(b"x")
        assert isinstance(info.value.__cause__, RuntimeError)
        tg.cancel_scope.cancel()


async def test_handlers_see_degraded_and_level() -> None:
    seen: list[tuple[bool, str]] = []
    gate = anyio.Event()

    async def handler(ctx: ActorContext, message: int) -> None:
        await gate.wait()
        seen.append((ctx.degraded, ctx.level.value))

    transitions: list[PressureTransition] = []
    pol = PressurePolicy(elevated=(PressureAction.DEGRADE,), critical=())
    actor: Actor[int, None] = Actor(
        "deg", from_handler(handler), capacity=10, policy=pol, on_transition=transitions.append
    )
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        for i in range(8):
            await actor.cast(i)
        await trio.testing.wait_all_tasks_blocked()
        assert actor.degraded and actor.level.value == "elevated"
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert seen[0] == (True, "elevated")
    assert seen[-1] == (False, "normal")
    assert [t.to_level.value for t in transitions] == ["elevated", "normal"]


async def test_shed_call_fails_its_caller_and_the_hook_sees_the_message() -> None:
    shed: list[tuple[Any, int]] = []
    gate = anyio.Event()

    async def handler(ctx: ActorContext, message: Any) -> Any:
        await gate.wait()
        return message

    pol = PressurePolicy(
        elevated_high=0.5, elevated_low=0.25, critical_high=0.5, critical_low=0.4,
        elevated=(), critical=(PressureAction.SHED,),
    )  # fmt: skip
    actor: Actor[Any, Any] = Actor(
        "shedder",
        from_handler(handler),
        capacity=4,
        policy=pol,
        on_shed=lambda m, p: shed.append((m, p)),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        await actor.cast("in-flight")
        await trio.testing.wait_all_tasks_blocked()  # taken by the handler
        await actor.cast("keep", priority=5)
        await actor.cast("low", priority=0)  # depth 2 = 50 %: critical, shedding
        with pytest.raises(PressureRejected):
            await actor.call("call-low", priority=-1)  # lowest: shed, caller told
        await actor.cast("high", priority=9)  # evicts "low"
        gate.set()
        tg.cancel_scope.cancel()
    assert shed == [("call-low", -1), ("low", 0)]


async def test_close_lets_a_transient_actor_finish() -> None:
    log: list[Any] = []
    actor = echo(log)
    sup = Supervisor([actor.child_spec()])
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await actor.cast(1)
        actor.close()
        with pytest.raises(anyio.ClosedResourceError):
            await actor.cast(2)
        await trio.testing.wait_all_tasks_blocked()
        assert not actor.statistics().running
        assert sup.restart_history() == []
        tg.cancel_scope.cancel()
    assert log == [(1, 1)]


async def test_one_incarnation_at_a_time() -> None:
    actor = echo([])
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        with pytest.raises(RuntimeError):
            await actor.run()
        tg.cancel_scope.cancel()


async def test_repeated_crashes_escalate(autojump_clock: trio.testing.MockClock) -> None:
    actor = echo([], call_timeout=5.0)
    sup = Supervisor([actor.child_spec()], policy=RestartPolicy(1, 10.0))
    with pytest.raises(BaseExceptionGroup) as info:
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            for _ in range(3):
                await actor.cast("boom")
            await trio.sleep(1)
    assert info.group_contains(SupervisorEscalation)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"call_timeout": 0.0},
        {"handler_timeout": -1.0},
        {"heartbeat_timeout": 0.0},
        {"heartbeat_timeout": math.inf},
        {"capacity": 0},
    ],
)
def test_invalid_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        echo([], **kwargs)


def test_child_spec_carries_the_actor_settings() -> None:
    actor = echo([], heartbeat_timeout=3.0)
    spec = actor.child_spec(shutdown_timeout=1.0)
    assert (spec.id, spec.heartbeat_timeout, spec.shutdown_timeout) == ("echo", 3.0, 1.0)
    assert spec.restart.value == "transient"
    assert actor.child_spec("other").id == "other"


async def test_without_timeouts_no_watchdog_runs_and_shedding_needs_no_hook() -> None:
    gate = anyio.Event()

    async def handler(ctx: ActorContext, message: int) -> int:
        await gate.wait()
        return message

    pol = PressurePolicy(elevated=(), critical=(PressureAction.SHED,))
    actor: Actor[int, int] = Actor(
        "bare", from_handler(handler), capacity=10, policy=pol, handler_timeout=None
    )
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        for i in range(20):
            await actor.cast(i)
        assert actor.statistics().mailbox.shed > 0
        gate.set()
        assert await actor.call(99, priority=1) == 99
        actor.close()
    assert not actor.statistics().running
