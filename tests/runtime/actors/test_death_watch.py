"""Death watch: callers of an actor that is down for good fail at once with ``ActorGone``;
an actor calling itself gets ``CallingSelf``; ``watch``/``wait_down`` say when and why; a
restarted tree accepts calls again."""

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
    CallingSelf,
    CallTimeout,
    TooManyWatchers,
    from_handler,
)
from supervisors import ChildDown, DownReason, Restart, Supervisor


class Boom(Exception):
    pass


class Gated(Behaviour[Any, Any]):
    """Blocks on ``"block"`` until the gate opens, then raises; echoes anything else."""

    def __init__(self, gate: anyio.Event) -> None:
        self.gate = gate

    async def handle(self, ctx: ActorContext, message: Any) -> Any:
        if message == "block":
            await self.gate.wait()
            raise Boom("crash after the gate")
        if message == "boom":
            raise Boom("scripted")
        return message


def gated(gate: anyio.Event, **kwargs: Any) -> Actor[Any, Any]:
    return Actor("gated", lambda: Gated(gate), call_timeout=60.0, **kwargs)


async def test_queued_callers_fail_at_once_when_the_actor_goes_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = anyio.Event()
    actor = gated(gate)
    sup = Supervisor([actor.child_spec(restart=Restart.TEMPORARY)])
    outcomes: list[BaseException] = []

    async def caller(i: int) -> None:
        try:
            await actor.call(i)
        except Exception as exc:
            outcomes.append(exc)

    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            await actor.cast("block")
            for i in range(3):
                tg.start_soon(caller, i)
            await trio.testing.wait_all_tasks_blocked()
            assert actor.statistics().mailbox.depth == 3
            start = trio.current_time()
            gate.set()  # the temporary actor crashes and is not restarted
            await trio.testing.wait_all_tasks_blocked()
            assert trio.current_time() == start  # no timeout was waited out
            assert len(outcomes) == 3
            assert all(isinstance(e, ActorGone) for e in outcomes)
            gone = outcomes[0]
            assert isinstance(gone, ActorGone)
            assert (gone.actor, gone.reason) == ("gated", "crashed")
            assert actor.statistics().mailbox.depth == 0
            # New calls and casts fail at once too, and count as a closed resource.
            with pytest.raises(ActorGone):
                await actor.call("late")
            with pytest.raises(anyio.ClosedResourceError):
                await actor.cast("late")
            with pytest.raises(ActorGone):
                actor.cast_nowait("late")
            assert trio.current_time() == start
            down = actor.down
            assert down is not None and down.reason is DownReason.CRASHED
            assert isinstance(down.error, Boom)
            assert actor.statistics().down == "crashed"
            tg.cancel_scope.cancel()


async def test_a_sender_waiting_for_room_fails_when_the_actor_goes_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = anyio.Event()
    actor = gated(gate, capacity=1)
    sup = Supervisor([actor.child_spec(restart=Restart.TEMPORARY)])
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            await actor.cast("block")
            await trio.testing.wait_all_tasks_blocked()
            await actor.cast("queued")  # fills the mailbox

            async def blocked_sender() -> None:
                with pytest.raises(ActorGone):
                    await actor.cast("waits for room")

            tg.start_soon(blocked_sender)
            await trio.testing.wait_all_tasks_blocked()
            assert actor.statistics().mailbox.waiting_senders == 1
            gate.set()
            await trio.testing.wait_all_tasks_blocked()
            assert actor.statistics().mailbox.waiting_senders == 0
            # The queued cast stays for a later start.
            assert actor.statistics().mailbox.depth == 1
            tg.cancel_scope.cancel()


async def test_a_restarted_tree_accepts_calls_again(autojump_clock: trio.testing.MockClock) -> None:
    gate = anyio.Event()
    actor = gated(gate)
    # The inner supervisor gives up at the first crash; the root restarts it, and with it
    # the actor.
    inner = Supervisor(
        [actor.child_spec(restart=Restart.PERMANENT)], policy=RestartPolicy(0, 10.0), name="inner"
    )
    root = Supervisor([inner.child_spec("inner")], policy=RestartPolicy(5, 10.0), name="root")
    downs: list[ChildDown] = []
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            actor.watch(downs.append)
            assert await actor.call("a") == "a"
            with pytest.raises(Exception):  # noqa: B017 - CallFailed: the crash itself
                await actor.call("boom")
            await trio.testing.wait_all_tasks_blocked()
            assert len(downs) == 1 and downs[0].child_id == "gated"
            assert actor.down is None  # back: the root restarted the tree
            assert await actor.call("b") == "b"
            assert actor.statistics().incarnations == 2
            tg.cancel_scope.cancel()


async def test_calling_self_fails_at_once(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[BaseException] = []

    async def handler(ctx: ActorContext, message: str) -> str:
        if message == "self":
            try:
                await me.call("inner")
            except CallingSelf as exc:
                seen.append(exc)
            await me.cast("inner")  # a cast to itself is fine: it is queued
        return message

    me: Actor[str, str] = Actor("me", from_handler(handler), call_timeout=30.0)
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(me.run)
            start = trio.current_time()
            assert await me.call("self") == "self"
            assert trio.current_time() == start
            await trio.testing.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    assert len(seen) == 1 and seen[0].actor == "me"
    assert me.statistics().handled == 2


async def test_calling_another_actor_from_a_handler_is_allowed() -> None:
    async def echo(ctx: ActorContext, message: str) -> str:
        return message

    other: Actor[str, str] = Actor("other", from_handler(echo))

    async def relay(ctx: ActorContext, message: str) -> str:
        return await other.call(message)

    front: Actor[str, str] = Actor("front", from_handler(relay))
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(other.run)
            await tg.start(front.run)
            assert await front.call("x") == "x"
            tg.cancel_scope.cancel()


async def test_wait_down_and_watch_report_how_it_ended(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = anyio.Event()
    actor = gated(gate)
    got: list[ChildDown] = []
    sup = Supervisor([actor.child_spec(restart=Restart.TEMPORARY)])
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            first = actor.watch(got.append)
            cancelled = actor.watch(got.append)
            cancelled.cancel()
            cancelled.cancel()  # idempotent
            assert actor.statistics().watches == 1

            async def waiter() -> None:
                down = await actor.wait_down()
                got.append(down)

            async def first_waiter() -> None:
                got.append(await first.wait())

            tg.start_soon(waiter)
            tg.start_soon(first_waiter)  # waits on the same watch as the callback
            await trio.testing.wait_all_tasks_blocked()
            assert first.down is None
            await actor.cast("boom")
            await trio.testing.wait_all_tasks_blocked()
            assert [d.reason for d in got] == [DownReason.CRASHED] * 3
            assert first.down is got[0] and await first.wait() is got[0]
            assert actor.statistics().watches == 0
            # Watching an actor that is down fires at once (Akka: Terminated at once).
            late: list[ChildDown] = []
            watch = actor.watch(late.append)
            assert late == [got[0]] and watch.down is got[0]
            assert await actor.wait_down() is got[0]
            tg.cancel_scope.cancel()


async def test_shutdown_of_the_supervisor_is_a_down_with_reason_shutdown() -> None:
    actor = gated(anyio.Event())
    got: list[ChildDown] = []
    actor.watch(got.append)
    sup = Supervisor([actor.child_spec()])
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            tg.cancel_scope.cancel()
    assert [d.reason for d in got] == [DownReason.SHUTDOWN]
    with pytest.raises(ActorGone) as info:
        await actor.call("x")
    assert info.value.reason == "shutdown"


async def test_unsupervised_run_ends_in_a_down() -> None:
    actor = gated(anyio.Event())
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.run)
            actor.close()
    down = actor.down
    assert down is not None and (down.child_id, down.reason) == ("gated", DownReason.NORMAL)

    crashing = gated(anyio.Event())
    crashing.cast_nowait("boom")
    with pytest.raises(Boom):
        await crashing.run()
    assert crashing.down is not None and crashing.down.reason is DownReason.CRASHED
    with pytest.raises(ActorGone):
        await crashing.call("x")
    # Started again, it takes messages again.
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(crashing.run)
            assert crashing.down is None
            assert await crashing.call("y") == "y"
            tg.cancel_scope.cancel()
    assert crashing.down is not None and crashing.down.reason is DownReason.SHUTDOWN


async def test_abandoned_queued_requests_are_skipped_not_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = anyio.Event()
    actor = gated(gate)
    sup = Supervisor([actor.child_spec(restart=Restart.TEMPORARY)])
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            await actor.cast("block")
            with pytest.raises(CallTimeout):
                await actor.call("gives up", timeout=1.0)
            gate.set()
            await trio.testing.wait_all_tasks_blocked()
            assert actor.statistics().skipped == 1
            tg.cancel_scope.cancel()


def test_watches_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    actor: Actor[Any, Any] = Actor("w", lambda: Gated(anyio.Event()), max_watches=2)
    first = actor.watch()
    actor.watch()
    with pytest.raises(TooManyWatchers) as info:
        actor.watch()
    assert info.value.max_watchers == 2
    first.cancel()
    actor.watch()  # a cancelled watch frees its slot

    def broken(down: ChildDown) -> None:
        raise RuntimeError("watcher bug")

    other: Actor[Any, Any] = Actor("w2", lambda: Gated(anyio.Event()))
    calls: list[ChildDown] = []
    other.watch(broken)
    other.watch(calls.append)
    with caplog.at_level(logging.ERROR, logger="garrison.actors"):
        other._went_down(ChildDown("w2", DownReason.NORMAL))
    assert len(calls) == 1  # a broken callback does not keep the others from their turn
    assert "watch callback raised" in caplog.text
    with pytest.raises(ValueError):
        Actor("w3", lambda: Gated(anyio.Event()), max_watches=0)
