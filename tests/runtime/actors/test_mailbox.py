"""Mailbox: bounded FIFO, backpressure, and each pressure action's effect (Trio, autojump
clock where time matters)."""

from __future__ import annotations

import math
import tracemalloc

import anyio
import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import given, settings

from policies import PressureAction, PressureLevel, PressurePolicy
from runtime import PressureRejected
from runtime.actors import Mailbox, PressureTransition
from runtime.telemetry import PRESSURE_SPAN, capture_telemetry

NORMAL, ELEVATED, CRITICAL = PressureLevel.NORMAL, PressureLevel.ELEVATED, PressureLevel.CRITICAL
THROTTLE, DEGRADE, SHED, REJECT = (
    PressureAction.THROTTLE,
    PressureAction.DEGRADE,
    PressureAction.SHED,
    PressureAction.REJECT,
)


def policy(
    elevated: tuple[PressureAction, ...] = (),
    critical: tuple[PressureAction, ...] = (),
    **kwargs: float,
) -> PressurePolicy:
    """Marks at 60/40 % (elevated) and 90/70 % (critical) unless told otherwise."""
    return PressurePolicy(elevated=elevated, critical=critical, **kwargs)  # type: ignore[arg-type]


def fill(box: Mailbox[int], n: int, priority: int = 0) -> None:
    for i in range(n):
        box.send_nowait(i, priority)


def drain(box: Mailbox[int]) -> list[int]:
    out = []
    while len(box):
        out.append(box.receive_nowait())
    return out


# -- plain channel -----------------------------------------------------------------------


async def test_fifo_and_backpressure_when_full() -> None:
    box: Mailbox[int] = Mailbox(2, name="plain")
    await box.send(1)
    await box.send(2)
    with pytest.raises(anyio.WouldBlock):
        box.send_nowait(3)
    async with anyio.create_task_group() as tg:
        tg.start_soon(box.send, 3)
        await trio.testing.wait_all_tasks_blocked()
        assert box.statistics().waiting_senders == 1
        assert len(box) == 2  # the blocked item is not buffered
        assert await box.receive() == 1
    assert [await box.receive(), await box.receive()] == [2, 3]
    with pytest.raises(anyio.WouldBlock):
        box.receive_nowait()
    stats = box.statistics()
    assert (stats.sent, stats.received, stats.max_depth_seen, stats.level) == (3, 3, 2, NORMAL)
    assert stats.capacity == 2 and stats.name == "plain" and box.name == "plain"
    assert box.capacity == 2 and box.policy is None and box.actions == ()


async def test_receiver_waits_for_an_item() -> None:
    box: Mailbox[str] = Mailbox(1)
    got: list[str] = []

    async def take() -> None:
        got.append(await box.receive())

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        await trio.testing.wait_all_tasks_blocked()
        assert box.statistics().waiting_receivers == 1
        box.send_nowait("x")
    assert got == ["x"]


async def test_close_drains_then_ends_and_refuses_senders() -> None:
    box: Mailbox[int] = Mailbox(1)
    box.send_nowait(1)
    errors: list[type[BaseException]] = []

    async def blocked_send() -> None:
        try:
            await box.send(2)
        except anyio.ClosedResourceError as exc:
            errors.append(type(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(blocked_send)
        await trio.testing.wait_all_tasks_blocked()
        await box.aclose()
        box.close()  # idempotent
    assert errors == [anyio.ClosedResourceError]
    assert box.closed and box.statistics().closed
    assert [item async for item in box] == [1]
    with pytest.raises(anyio.EndOfStream):
        await box.receive()
    with pytest.raises(anyio.EndOfStream):
        box.receive_nowait()
    with pytest.raises(anyio.ClosedResourceError):
        await box.send(3)
    with pytest.raises(anyio.ClosedResourceError):
        box.send_nowait(3)


async def test_close_wakes_waiting_receivers() -> None:
    box: Mailbox[int] = Mailbox(1)
    ended: list[bool] = []

    async def wait() -> None:
        async for _ in box:
            pass
        ended.append(True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        box.close()
    assert ended == [True]


async def test_cancelled_waiter_passes_its_wake_up_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A receiver woken for an item but cancelled before it runs must not strand the
    item while another receiver waits."""
    box: Mailbox[int] = Mailbox(1)
    got: list[int] = []
    first = anyio.CancelScope()

    async def doomed() -> None:
        with first:
            await box.receive()

    async def second() -> None:
        got.append(await box.receive())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(doomed)
            await trio.testing.wait_all_tasks_blocked()
            tg.start_soon(second)
            await trio.testing.wait_all_tasks_blocked()
            first.cancel()  # the first waiter is cancelled, but has not run yet...
            box.send_nowait(7)  # ...when the item arrives and wakes it
    assert got == [7]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Mailbox(0)


# -- levels and transitions --------------------------------------------------------------


async def test_transitions_with_hysteresis_are_reported() -> None:
    seen: list[PressureTransition] = []
    box: Mailbox[int] = Mailbox(
        10, name="intake", policy=policy(elevated=(DEGRADE,)), on_transition=seen.append
    )
    with capture_telemetry() as tel:
        fill(box, 6)  # 60 %: elevated
        assert box.level is ELEVATED and box.degraded
        for _ in range(3):  # hover around the high mark: no flapping
            box.receive_nowait()
            box.send_nowait(0)
        box.receive_nowait()
        box.receive_nowait()  # depth 4 = 40 %: still elevated (low mark)
        assert box.level is ELEVATED
        box.receive_nowait()  # 30 %: normal
        assert box.level is NORMAL and not box.degraded
        fill(box, 7)  # 10: critical
        assert box.level is CRITICAL
        drain(box)
    assert [(t.from_level, t.to_level, t.depth) for t in seen] == [
        (NORMAL, ELEVATED, 6),
        (ELEVATED, NORMAL, 3),
        (NORMAL, ELEVATED, 6),
        (ELEVATED, CRITICAL, 9),
        (CRITICAL, ELEVATED, 6),
        (ELEVATED, NORMAL, 3),
    ]
    assert seen[0].channel == "intake" and seen[0].capacity == 10
    assert seen[0].actions == (DEGRADE,)
    assert box.statistics().transitions == 6
    spans = tel.spans(PRESSURE_SPAN)
    assert len(spans) == 6
    attrs = dict(spans[0].attributes or {})
    assert attrs["garrison.channel"] == "intake"
    assert (attrs["garrison.pressure.from"], attrs["garrison.pressure.to"]) == (
        "normal",
        "elevated",
    )
    assert attrs["garrison.pressure.depth"] == 6
    assert list(attrs["garrison.pressure.actions"]) == ["degrade"]


async def test_a_policy_that_starts_loaded_is_honoured() -> None:
    # With a low mark of 0 the level, once entered, is never left; it starts normal.
    box: Mailbox[int] = Mailbox(4, policy=policy(elevated_low=0.0, elevated_high=0.25))
    assert box.level is NORMAL
    box.send_nowait(1)
    assert box.level is ELEVATED
    box.receive_nowait()
    assert box.level is ELEVATED  # 0 >= low mark 0: stays


# -- actions -----------------------------------------------------------------------------


async def test_throttle_admits_at_the_policy_rate(autojump_clock: trio.testing.MockClock) -> None:
    box: Mailbox[int] = Mailbox(
        100,
        policy=policy(
            elevated=(THROTTLE,),
            throttle_rate_per_s=10.0,
            throttle_burst=1.0,
            elevated_high=0.01,
            elevated_low=0.005,
        ),
    )
    box.send_nowait(0)  # 1 %: elevated, throttling from now on
    assert box.level is ELEVATED
    start = trio.current_time()
    for i in range(1, 21):
        await box.send(i)
    elapsed = trio.current_time() - start
    # The bucket had its one token of burst; then 10 per second.
    assert elapsed == pytest.approx(1.9, abs=1e-6)
    assert box.statistics().throttled >= 19
    with pytest.raises(anyio.WouldBlock):
        box.send_nowait(99)  # no token right now
    drain(box)
    assert box.level is NORMAL
    box.send_nowait(1)  # not throttled at normal... but 1 % is elevated again:
    assert box.level is ELEVATED


async def test_shed_keeps_depth_and_drops_lowest_priority_newest_first() -> None:
    shed: list[tuple[int, int]] = []
    box: Mailbox[int] = Mailbox(
        10,
        policy=policy(critical=(SHED,), critical_high=0.5, critical_low=0.4, elevated_high=0.5),
        on_shed=lambda item, prio: shed.append((item, prio)),
    )
    for item, prio in [(1, 5), (2, 1), (3, 3), (4, 1), (5, 2)]:
        await box.send(item, prio)
    assert box.level is CRITICAL
    await box.send(6, 4)  # evicts 4 (priority 1, newer of the two 1s)
    await box.send(7, 1)  # lowest is now 1 (item 2) == incoming: incoming goes (newest)
    await box.send(8, 0)  # lowest of all: incoming goes
    await box.send(9, 9)  # evicts 2 (priority 1)
    assert shed == [(4, 1), (7, 1), (8, 0), (2, 1)]
    assert len(box) == 5  # shedding keeps the depth from growing
    assert drain(box) == [1, 3, 5, 6, 9]
    stats = box.statistics()
    assert stats.shed == 4 and stats.max_depth_seen == 5


async def test_shed_on_an_empty_mailbox_admits() -> None:
    pol = policy(elevated=(SHED,), elevated_low=0.0, elevated_high=0.25)
    box: Mailbox[int] = Mailbox(4, policy=pol)
    box.send_nowait(1)
    box.receive_nowait()
    assert box.level is ELEVATED and len(box) == 0
    box.send_nowait(2)
    assert drain(box) == [2]


async def test_reject_raises_a_typed_error_and_buffers_nothing() -> None:
    box: Mailbox[int] = Mailbox(10, name="orders", policy=policy(critical=(REJECT,)))
    fill(box, 9)
    assert box.level is CRITICAL
    with pytest.raises(PressureRejected) as info:
        await box.send(99)
    assert (info.value.channel, info.value.level, info.value.depth) == ("orders", "critical", 9)
    with pytest.raises(PressureRejected):
        box.send_nowait(99)
    assert len(box) == 9 and box.statistics().rejected == 2
    for _ in range(3):
        box.receive_nowait()  # 6 < 7 (critical low): elevated, no reject
    await box.send(10)
    assert drain(box)[-1] == 10


async def test_reject_with_shed_refuses_only_what_would_be_shed() -> None:
    shed: list[int] = []
    box: Mailbox[int] = Mailbox(
        10,
        policy=policy(critical=(SHED, REJECT)),
        on_shed=lambda item, prio: shed.append(item),
    )
    fill(box, 9, priority=1)
    with pytest.raises(PressureRejected):
        await box.send(100, 1)  # equal priority: it would be the one shed
    await box.send(200, 2)  # outranks: evicts the newest priority-1 item (8)
    assert shed == [8]
    assert drain(box) == [0, 1, 2, 3, 4, 5, 6, 7, 200]


async def test_full_without_shed_or_reject_blocks(autojump_clock: trio.testing.MockClock) -> None:
    box: Mailbox[int] = Mailbox(4, policy=policy(critical=(DEGRADE,)))
    fill(box, 4)
    with anyio.move_on_after(5) as scope:
        await box.send(5)
    assert scope.cancelled_caught and len(box) == 4


# -- bounds under overload ---------------------------------------------------------------

ops = st.lists(
    st.tuples(st.sampled_from(["send", "send", "send", "recv"]), st.integers(-2, 2)),
    max_size=300,
)
actions = st.lists(st.sampled_from([DEGRADE, SHED, REJECT]), max_size=3, unique=True).map(tuple)


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(1, 40),
    elevated=actions,
    critical=actions,
    script=ops,
)
def test_depth_never_exceeds_capacity_and_level_follows_the_policy(
    capacity: int,
    elevated: tuple[PressureAction, ...],
    critical: tuple[PressureAction, ...],
    script: list[tuple[str, int]],
) -> None:
    pol = policy(elevated=elevated, critical=critical)
    box: Mailbox[int] = Mailbox(capacity, policy=pol)
    expected = PressureLevel.NORMAL
    for op, prio in script:
        try:
            if op == "send":
                box.send_nowait(0, prio)
            else:
                box.receive_nowait()
        except (anyio.WouldBlock, PressureRejected):
            pass
        depth = len(box)
        assert 0 <= depth <= capacity
        expected = pol.next_level(expected, depth, capacity)
        assert box.level is expected
        stats = box.statistics()
        assert stats.depth == depth <= stats.max_depth_seen <= capacity
    stats = box.statistics()
    # Every accepted item is buffered, received, or was evicted by shedding.
    assert stats.sent >= stats.received + stats.depth


async def test_sustained_overload_stays_bounded_and_memory_flat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Fast producers, slow consumer, shedding at critical: depth stays at or below the
    bound, every drop is counted, and memory does not grow with the number of messages."""
    capacity = 50
    shed = 0

    def on_shed(item: bytes, prio: int) -> None:
        nonlocal shed
        shed += 1

    box: Mailbox[bytes] = Mailbox(
        capacity, policy=policy(elevated=(DEGRADE,), critical=(SHED,)), on_shed=on_shed
    )
    sent = 0

    async def produce(rounds: int) -> None:
        nonlocal sent
        for i in range(rounds):
            await box.send(b"x" * 100, i % 5)
            sent += 1

    async def consume() -> None:
        async for _ in box:
            await trio.sleep(0.01)

    async def phase(rounds: int) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(produce, rounds)

    async with trio.open_nursery() as outer:
        outer.start_soon(consume)
        await phase(500)  # warm up
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await phase(5000)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        outer.cancel_scope.cancel()
    stats = box.statistics()
    assert stats.max_depth_seen <= capacity
    assert stats.shed == shed > 15_000
    assert stats.sent - stats.received - stats.depth == shed - (sent - stats.sent)
    assert after - before < 64 * 1024, (before, after)
    assert math.isfinite(trio.current_time())


async def test_refuse_accept_and_remove_if_for_a_down_actor() -> None:
    # What an actor does to its mailbox when it goes down for good and comes back.
    seen: list[PressureTransition] = []
    box: Mailbox[int] = Mailbox(
        4, name="down", policy=policy(elevated=(DEGRADE,)), on_transition=seen.append
    )
    fill(box, 4)
    assert box.level is not NORMAL
    woken: list[str] = []

    async def sender() -> None:
        await box.send(99)
        woken.append("sent")

    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            await trio.testing.wait_all_tasks_blocked()
            # Taking items out makes room: a waiting sender gets it, the level follows.
            assert box._remove_if(lambda item: item % 2 == 1) == [1, 3]
            await trio.testing.wait_all_tasks_blocked()
    assert woken == ["sent"] and drain(box) == [0, 2, 99]
    assert box.level is NORMAL and seen[-1].to_level is NORMAL
    assert box._remove_if(lambda item: True) == []

    box._refuse(lambda: LookupError("gone"))
    with pytest.raises(LookupError):
        box.send_nowait(1)
    with pytest.raises(LookupError):
        await box.send(1)
    box._accept()
    box.send_nowait(1)
    box.close()
    box._accept()  # a closed mailbox stays closed
    with pytest.raises(anyio.ClosedResourceError):
        box.send_nowait(2)
