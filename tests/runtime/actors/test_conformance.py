"""The conformance subset, on both anyio backends: Trio (reference) and asyncio.

No clock tricks (asyncio has no mock clock): everything is driven by events and
``anyio.wait_all_tasks_blocked()``, so the tests are deterministic on both backends.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import anyio
import pytest
import sniffio

from policies import PressureAction, PressurePolicy, RestartPolicy
from runtime import PressureRejected, open_store
from runtime.actors import (
    Actor,
    ActorContext,
    ActorGone,
    Behaviour,
    CallFailed,
    CallingSelf,
    Directive,
    Mailbox,
    StopReason,
    from_handler,
)
from supervisors import DownReason, Restart, Supervisor

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Boom(Exception):
    pass


async def test_runs_on_the_requested_backend(anyio_backend: str) -> None:
    assert sniffio.current_async_library() == anyio_backend


async def test_mailbox_fifo_backpressure_and_close() -> None:
    box: Mailbox[int] = Mailbox(2)
    got: list[int] = []

    async def consume() -> None:
        async for item in box:
            got.append(item)

    async with anyio.create_task_group() as tg:
        for i in range(2):
            await box.send(i)
        tg.start_soon(box.send, 2)
        await anyio.wait_all_tasks_blocked()
        assert box.statistics().waiting_senders == 1 and len(box) == 2
        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        box.close()
    assert got == [0, 1, 2]
    assert box.statistics().max_depth_seen == 2


async def test_mailbox_shed_and_reject() -> None:
    shed: list[int] = []
    pol = PressurePolicy(elevated=(), critical=(PressureAction.SHED, PressureAction.REJECT))
    box: Mailbox[int] = Mailbox(10, policy=pol, on_shed=lambda item, prio: shed.append(item))
    for i in range(9):
        await box.send(i, 1)
    with pytest.raises(PressureRejected):
        await box.send(99, 0)
    await box.send(100, 2)
    assert shed == [8]
    assert len(box) == 9


async def test_actor_cast_call_crash_and_restart() -> None:
    log: list[tuple[int, Any]] = []

    async def handler(ctx: ActorContext, message: Any) -> Any:
        log.append((ctx.incarnation, message))
        if message == "boom":
            raise Boom
        return message

    actor: Actor[Any, Any] = Actor("conf", from_handler(handler), heartbeat_timeout=30.0)
    sup = Supervisor([actor.child_spec()], policy=RestartPolicy(5, 60.0))
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        await actor.cast("a")
        with pytest.raises(CallFailed):
            await actor.call("boom")
        await actor.cast("b")
        assert await actor.call("c") == "c"
        tg.cancel_scope.cancel()
    assert log == [(1, "a"), (1, "boom"), (2, "b"), (2, "c")]
    assert actor.statistics().incarnations == 2


async def test_checkpoint_restored_after_restart(tmp_path: Path) -> None:
    class Counter(Behaviour[str, int]):
        count = 0

        async def started(self, ctx: ActorContext) -> None:
            if ctx.restored is not None:
                (self.count,) = struct.unpack("!q", ctx.restored)

        async def handle(self, ctx: ActorContext, message: str) -> int:
            if message == "crash":
                raise Boom
            self.count += 1
            await ctx.checkpoint(struct.pack("!q", self.count))
            return self.count

    async with open_store(tmp_path / "x.db") as store:
        actor: Actor[str, int] = Actor("counter", Counter, store=store)
        sup = Supervisor([actor.child_spec()], policy=RestartPolicy(5, 60.0))
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            assert await actor.call("add") == 1
            assert await actor.call("add") == 2
            with pytest.raises(CallFailed):
                await actor.call("crash")
            assert await actor.call("add") == 3
            tg.cancel_scope.cancel()


async def test_death_watch_directives_and_hooks() -> None:
    gate = anyio.Event()
    log: list[Any] = []

    class Lifecycle(Behaviour[Any, Any]):
        async def handle(self, ctx: ActorContext, message: Any) -> Any:
            if message == "block":
                await gate.wait()
                raise Boom
            if message == "bad":
                raise ValueError(message)
            if message == "self":
                with pytest.raises(CallingSelf):
                    await actor.call("x")
            return message

        def on_error(self, ctx: ActorContext, message: Any, error: Exception) -> Directive:
            return Directive.RESUME if isinstance(error, ValueError) else Directive.RESTART

        async def stopped(self, ctx: ActorContext, reason: StopReason) -> None:
            await anyio.lowlevel.checkpoint()
            log.append(reason.value)

    actor: Actor[Any, Any] = Actor("conf-down", Lifecycle, call_timeout=30.0)
    sup = Supervisor([actor.child_spec(restart=Restart.TEMPORARY)])
    failures: list[BaseException] = []

    async def queued() -> None:
        try:
            await actor.call("queued")
        except ActorGone as exc:
            failures.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            with pytest.raises(CallFailed):
                await actor.call("bad")  # resumed
            assert await actor.call("self") == "self"
            await actor.cast("block")
            tg.start_soon(queued)
            await anyio.wait_all_tasks_blocked()
            gate.set()
            down = await actor.wait_down()
            await anyio.wait_all_tasks_blocked()
            assert down.reason is DownReason.CRASHED and len(failures) == 1
            with pytest.raises(ActorGone):
                await actor.call("late")
            tg.cancel_scope.cancel()
    assert log == ["crashed"]
    assert actor.statistics().resumed == 1
