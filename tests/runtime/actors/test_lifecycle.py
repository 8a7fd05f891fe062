"""Lifecycle hooks (``started``, ``pre_restart``, ``stopped``) and per-exception directives
(``Behaviour.on_error``: resume, restart, stop, escalate)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from policies import RestartPolicy
from runtime.actors import (
    Actor,
    ActorContext,
    ActorGone,
    Behaviour,
    CallFailed,
    Directive,
    Escalated,
    HandlerTimeout,
    StopReason,
    from_handler,
)
from supervisors import DownReason, Restart, Supervisor


class Boom(Exception):
    pass


class Recorder(Behaviour[Any, Any]):
    """Counts messages; ``"boom"`` raises; ``on_error`` follows ``directive``."""

    def __init__(
        self,
        log: list[Any],
        directive: Directive = Directive.RESTART,
        stop_sleep: float = 0.0,
    ) -> None:
        self.log = log
        self.directive = directive
        self.stop_sleep = stop_sleep
        self.count = 0

    async def started(self, ctx: ActorContext) -> None:
        self.log.append(("started", ctx.incarnation))

    async def handle(self, ctx: ActorContext, message: Any) -> Any:
        if message == "boom":
            raise Boom("scripted")
        if isinstance(message, tuple) and message[0] == "sleep":
            await trio.sleep(message[1])
        self.count += 1
        return self.count

    def on_error(self, ctx: ActorContext, message: Any, error: Exception) -> Directive:
        self.log.append(("on_error", message, type(error).__name__))
        return self.directive

    async def pre_restart(self, ctx: ActorContext, error: Exception) -> None:
        self.log.append(("pre_restart", type(error).__name__))

    async def stopped(self, ctx: ActorContext, reason: StopReason) -> None:
        self.log.append(("stopped", reason.value))
        if self.stop_sleep:
            await trio.sleep(self.stop_sleep)
            self.log.append(("released", ctx.incarnation))


def recorder(
    log: list[Any], directive: Directive = Directive.RESTART, **kw: Any
) -> Actor[Any, Any]:
    stop_sleep = kw.pop("stop_sleep", 0.0)
    return Actor("rec", lambda: Recorder(log, directive, stop_sleep), call_timeout=60.0, **kw)


async def test_hooks_run_on_crash_and_shutdown(autojump_clock: trio.testing.MockClock) -> None:
    log: list[Any] = []
    actor = recorder(log)
    sup = Supervisor([actor.child_spec()], policy=RestartPolicy(5, 10.0))
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            assert await actor.call("a") == 1
            with pytest.raises(CallFailed):
                await actor.call("boom")
            assert await actor.call("b") == 1  # RESTART: a fresh instance
            tg.cancel_scope.cancel()
    assert log == [
        ("started", 1),
        ("on_error", "boom", "Boom"),
        ("pre_restart", "Boom"),
        ("stopped", "crashed"),
        ("started", 2),
        ("stopped", "shutdown"),
    ]


async def test_stopped_runs_on_a_normal_end() -> None:
    log: list[Any] = []
    actor = recorder(log)
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.run)
            actor.close()
    assert log == [("started", 1), ("stopped", "normal")]


async def test_stopped_is_bounded_by_the_shutdown_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []
    actor = recorder(log, stop_sleep=100.0)
    sup = Supervisor([actor.child_spec(shutdown_timeout=2.0)])
    with trio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            tg.cancel_scope.cancel()
            start = trio.current_time()
    assert trio.current_time() - start == pytest.approx(2.0)
    assert log == [("started", 1), ("stopped", "shutdown")]  # cut short: never released

    # Cleanup that fits in the grace period completes even though the stop cancelled it.
    log.clear()
    quick = recorder(log, stop_sleep=1.0)
    sup = Supervisor([quick.child_spec(shutdown_timeout=2.0)])
    with trio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            tg.cancel_scope.cancel()
    assert log[-1] == ("released", 1)


async def test_stopped_after_a_crash_is_bounded_too(autojump_clock: trio.testing.MockClock) -> None:
    log: list[Any] = []
    actor = recorder(log, stop_sleep=100.0)
    actor.child_spec(shutdown_timeout=3.0)  # the bound comes with the spec
    actor.cast_nowait("boom")
    start = trio.current_time()
    with trio.fail_after(10), pytest.raises(Boom):
        await actor.run()
    assert trio.current_time() - start == pytest.approx(3.0)
    assert ("released", 1) not in log


async def test_hook_errors_are_logged_and_do_not_change_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Faulty(Behaviour[Any, Any]):
        async def handle(self, ctx: ActorContext, message: Any) -> Any:
            raise Boom("handler")

        async def pre_restart(self, ctx: ActorContext, error: Exception) -> None:
            raise RuntimeError("pre_restart bug")

        async def stopped(self, ctx: ActorContext, reason: StopReason) -> None:
            raise RuntimeError("stopped bug")

    actor: Actor[Any, Any] = Actor("faulty", Faulty)
    actor.cast_nowait("x")
    with caplog.at_level(logging.ERROR, logger="garrison.actors"), pytest.raises(Boom):
        await actor.run()
    assert "pre_restart raised" in caplog.text and "stopped raised" in caplog.text


async def test_no_end_hooks_when_started_failed() -> None:
    log: list[Any] = []

    class FailsToStart(Recorder):
        async def started(self, ctx: ActorContext) -> None:
            raise Boom("no start")

    actor: Actor[Any, Any] = Actor("nostart", lambda: FailsToStart(log))
    with pytest.raises(Boom):
        await actor.run()
    assert log == []


async def test_resume_keeps_state_and_fails_only_the_caller(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []
    actor = recorder(log, Directive.RESUME)
    sup = Supervisor([actor.child_spec()], policy=RestartPolicy(5, 10.0))
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            assert await actor.call("a") == 1
            with pytest.raises(CallFailed) as info:
                await actor.call("boom")
            assert isinstance(info.value.__cause__, Boom)
            await actor.cast("boom")  # a failed cast resumes too
            assert await actor.call("b") == 2  # same instance, state kept
            tg.cancel_scope.cancel()
    stats = actor.statistics()
    assert (stats.incarnations, stats.failed, stats.resumed, stats.handled) == (1, 2, 2, 2)
    assert sup.restart_history() == []
    assert ("pre_restart", "Boom") not in log


async def test_stop_ends_the_actor_for_good(autojump_clock: trio.testing.MockClock) -> None:
    log: list[Any] = []
    actor = recorder(log, Directive.STOP)
    sup = Supervisor([actor.child_spec()], policy=RestartPolicy(5, 10.0))
    outcomes: list[BaseException] = []

    async def caller(message: str) -> None:
        try:
            await actor.call(message)
        except Exception as exc:
            outcomes.append(exc)

    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            await actor.cast(("sleep", 1.0))
            for message in ("boom", "queued"):  # queued in this order behind the sleep
                tg.start_soon(caller, message)
                await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(2.0)
            assert [type(e) for e in outcomes] == [CallFailed, ActorGone]
            down = actor.down
            assert down is not None and down.reason is DownReason.NORMAL
            tg.cancel_scope.cancel()
    assert ("stopped", "normal") in log and sup.restart_history() == []


async def test_stop_after_a_failed_cast_ends_the_incarnation_normally() -> None:
    log: list[Any] = []
    actor = recorder(log, Directive.STOP)
    actor.cast_nowait("boom")
    actor.cast_nowait("never handled")
    with trio.fail_after(5):
        await actor.run()  # returns: a normal end
    assert log[-1] == ("stopped", "normal")
    assert actor.statistics().mailbox.depth == 1


async def test_stop_of_a_permanent_actor_is_restarted_as_otp_does(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []
    actor = recorder(log, Directive.STOP)
    sup = Supervisor([actor.child_spec(restart=Restart.PERMANENT)], policy=RestartPolicy(5, 10.0))
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            with pytest.raises(CallFailed):
                await actor.call("boom")
            assert await actor.call("after") == 1
            tg.cancel_scope.cancel()
    assert actor.statistics().incarnations == 2


async def test_escalate_ends_the_incarnation_with_escalated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []
    actor = recorder(log, Directive.ESCALATE)
    sup = Supervisor([actor.child_spec()], policy=RestartPolicy(5, 10.0))
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            await actor.cast("boom")
            assert await actor.call("after") == 1
            tg.cancel_scope.cancel()
    [record] = sup.restart_history()
    assert record.error_type == "Escalated"
    assert ("pre_restart", "Boom") not in log and ("stopped", "crashed") in log

    direct = recorder([], Directive.ESCALATE)
    direct.cast_nowait("boom")
    with pytest.raises(Escalated) as info:
        await direct.run()
    assert isinstance(info.value.__cause__, Boom) and info.value.error_type == "Boom"


async def test_on_error_raising_crashes_with_its_exception() -> None:
    class Strict(Behaviour[Any, Any]):
        async def handle(self, ctx: ActorContext, message: Any) -> Any:
            raise Boom("handler")

        def on_error(self, ctx: ActorContext, message: Any, error: Exception) -> Directive:
            raise KeyError("decision failed")

    actor: Actor[Any, Any] = Actor("strict", Strict)
    actor.cast_nowait("x")
    with pytest.raises(KeyError) as info:
        await actor.run()
    assert isinstance(info.value.__context__, Boom)


async def test_handler_timeout_runs_pre_restart_with_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []
    actor = recorder(log, Directive.RESUME, handler_timeout=1.0)
    actor.cast_nowait(("sleep", 5.0))
    with trio.fail_after(10), pytest.raises(HandlerTimeout):
        await actor.run()
    # Timeouts are not offered to on_error: they always end the incarnation.
    assert log == [("started", 1), ("pre_restart", "HandlerTimeout"), ("stopped", "crashed")]


async def test_default_hooks_do_nothing() -> None:
    class Plain(Behaviour[int, int]):
        async def handle(self, ctx: ActorContext, message: int) -> int:
            return message

    actor: Actor[int, int] = Actor("plain", Plain)
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.run)
            assert await actor.call(3) == 3
            actor.close()
    assert actor.down is not None


async def test_a_function_behaviour_can_be_called_directly() -> None:
    async def double(ctx: ActorContext, message: int) -> int:
        return message * 2

    factory = from_handler(double)
    actor: Actor[int, int] = Actor("fn", factory)
    assert await factory().handle(ActorContext(actor, 1, None), 21) == 42
