"""``Mailbox``: a bounded, priority-aware channel that acts on a pressure policy.

The pure :class:`~policies.PressurePolicy` decides the level from the depth; the mailbox
acts on it at every ``send``: throttle (wait for a token of the policy's rate), shed (keep
the depth from growing by dropping the lowest-priority item), reject (refuse with
:class:`~runtime.PressureRejected`), and otherwise, when full, make the sender wait
(backpressure). Receivers get items in send order (FIFO); priority only decides what is
shed. Nothing grows with load: at most ``capacity`` items are buffered, ever.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio
import msgspec
from anyio.lowlevel import checkpoint

from policies import PressureAction, PressureLevel, PressurePolicy, shed_victim
from runtime import telemetry
from runtime._errors import PressureRejected

__all__ = ["Mailbox", "MailboxStatistics", "PressureTransition", "ShedHook", "TransitionHook"]

T = TypeVar("T")


class PressureTransition(msgspec.Struct, frozen=True, kw_only=True):
    """One change of a channel's pressure level, as given to ``on_transition``.

    Attributes:
        channel: the channel's name.
        from_level: the level before.
        to_level: the level after.
        depth: items buffered when the level changed.
        capacity: the channel's bound.
        actions: the actions in force at ``to_level``.
    """

    channel: str
    from_level: PressureLevel
    to_level: PressureLevel
    depth: int
    capacity: int
    actions: tuple[PressureAction, ...]


class MailboxStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a :class:`Mailbox`.

    Attributes:
        name: the channel's name.
        depth: items buffered now (never more than ``capacity``).
        capacity: the bound.
        max_depth_seen: the highest depth ever reached.
        level: the pressure level now.
        degraded: whether ``degrade`` is in force.
        closed: whether :meth:`Mailbox.close` was called.
        transitions: level changes so far.
        sent: items accepted into the buffer.
        received: items taken out by receivers.
        shed: items dropped by the ``shed`` action (buffered or incoming).
        rejected: sends refused with ``PressureRejected``.
        throttled: times a sender had to wait for (or, without waiting, was refused) a
            throttle token.
        waiting_senders: senders blocked for room now.
        waiting_receivers: receivers blocked for an item now.
    """

    name: str
    depth: int
    capacity: int
    max_depth_seen: int
    level: PressureLevel
    degraded: bool
    closed: bool
    transitions: int
    sent: int
    received: int
    shed: int
    rejected: int
    throttled: int
    waiting_senders: int
    waiting_receivers: int


TransitionHook = Callable[[PressureTransition], object]
"""Called with every level change, synchronously, at the moment it happens."""

ShedHook = Callable[[T, int], object]
"""Called with ``(item, priority)`` for every item the ``shed`` action drops."""


class Mailbox(Generic[T]):
    """A bounded FIFO channel with a pressure policy.

    Args:
        capacity: the most items ever buffered (at least 1).
        name: the channel's name in statistics, errors and telemetry.
        policy: watermarks and actions; ``None`` means no pressure handling (the level
            stays ``normal`` and a full mailbox simply makes senders wait).
        on_transition: called with a :class:`PressureTransition` at every level change.
        on_shed: called with ``(item, priority)`` for every item shed, e.g. to dead-letter
            it with reason ``shed`` when ``policy.shed_dead_letter`` says so.

    Hooks are plain synchronous callables run by the task whose ``send``/``receive``
    caused the event, after the mailbox's state has changed: they must not block (hand any
    I/O to a task of your own). An exception from a hook propagates to that caller, the
    event having already taken effect. Besides the hook, every transition is reported to
    :func:`runtime.telemetry.pressure_transition` (span ``garrison.pressure.transition``,
    counter, level gauge, log line) and every shed or rejected item is counted there too.

    Raises:
        ValueError: ``capacity < 1``.
    """

    __slots__ = (
        "_actions",
        "_bucket",
        "_capacity",
        "_closed",
        "_degrade",
        "_fall_below",
        "_items",
        "_level",
        "_max_depth",
        "_name",
        "_on_shed",
        "_on_transition",
        "_policy",
        "_prios",
        "_received",
        "_receivers",
        "_reject",
        "_rejected",
        "_rise_at",
        "_senders",
        "_sent",
        "_shed",
        "_shed_count",
        "_throttle",
        "_throttled",
        "_transitions",
    )

    def __init__(
        self,
        capacity: int,
        *,
        name: str = "mailbox",
        policy: PressurePolicy | None = None,
        on_transition: TransitionHook | None = None,
        on_shed: ShedHook[T] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._name = name
        self._policy = policy
        self._on_transition = on_transition
        self._on_shed = on_shed
        self._items: deque[T] = deque()
        self._prios: deque[int] = deque()
        self._receivers: deque[anyio.Event] = deque()
        self._senders: deque[anyio.Event] = deque()
        self._closed = False
        self._bucket = policy.token_bucket() if policy is not None else None
        self._level = PressureLevel.NORMAL
        self._actions: tuple[PressureAction, ...] = ()
        self._throttle = self._degrade = self._shed = self._reject = False
        self._rise_at = capacity + 1
        self._fall_below = 0
        self._max_depth = 0
        self._transitions = self._sent = self._received = 0
        self._shed_count = self._rejected = self._throttled = 0
        if policy is not None:
            self._enter(policy.next_level(PressureLevel.NORMAL, 0, capacity))

    # -- introspection ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """The channel's name."""
        return self._name

    @property
    def capacity(self) -> int:
        """The most items ever buffered."""
        return self._capacity

    @property
    def policy(self) -> PressurePolicy | None:
        """The pressure policy, if any."""
        return self._policy

    @property
    def level(self) -> PressureLevel:
        """The pressure level now."""
        return self._level

    @property
    def actions(self) -> tuple[PressureAction, ...]:
        """The actions in force at the current level."""
        return self._actions

    @property
    def degraded(self) -> bool:
        """Whether the current level's actions include ``degrade``."""
        return self._degrade

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def statistics(self) -> MailboxStatistics:
        """A frozen snapshot of the mailbox's state and counters."""
        return MailboxStatistics(
            name=self._name,
            depth=len(self._items),
            capacity=self._capacity,
            max_depth_seen=self._max_depth,
            level=self._level,
            degraded=self._degrade,
            closed=self._closed,
            transitions=self._transitions,
            sent=self._sent,
            received=self._received,
            shed=self._shed_count,
            rejected=self._rejected,
            throttled=self._throttled,
            waiting_senders=len(self._senders),
            waiting_receivers=len(self._receivers),
        )

    # -- sending ---------------------------------------------------------------------

    async def send(self, item: T, priority: int = 0) -> None:
        """Put ``item`` in the mailbox, acting on the current pressure level.

        In order: while ``throttle`` is in force, wait for a token of the policy's rate;
        while ``shed`` is in force (and the mailbox is not empty), keep the depth from
        growing: the lowest-priority item among those buffered and this one is dropped
        (newest first among equals, see :func:`policies.shed_victim`) and handed to
        ``on_shed``, which may be this very item (``send`` then returns normally);
        while ``reject`` is in force, raise :class:`~runtime.PressureRejected` (with
        ``shed`` too: only when this item would be the one shed); otherwise, when full,
        wait for room.

        Raises:
            PressureRejected: refused by the ``reject`` action; nothing was buffered.
            anyio.ClosedResourceError: the mailbox is closed (also while waiting).

        Cancellation: always a checkpoint; if cancelled while waiting, the item was not
        buffered.
        """
        await checkpoint()
        token = self._bucket is None
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._throttle and not token:
                wait = self._take_token()
                if wait > 0.0:
                    await anyio.sleep(wait)
                    continue
                token = True
            if self._offer(item, priority):
                return
            await self._wait(self._senders)

    def send_nowait(self, item: T, priority: int = 0) -> None:
        """Like :meth:`send`, but never waits.

        Raises:
            anyio.WouldBlock: the mailbox is full (and neither shed nor reject is in
                force), or throttling and no token is available now.
            PressureRejected: refused by the ``reject`` action.
            anyio.ClosedResourceError: the mailbox is closed.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        if self._throttle and self._take_token() > 0.0:
            raise anyio.WouldBlock
        if not self._offer(item, priority):
            raise anyio.WouldBlock

    def _take_token(self) -> float:
        bucket = self._bucket
        assert bucket is not None
        allowed, wait, self._bucket = bucket.take(anyio.current_time())
        if allowed:
            return 0.0
        self._throttled += 1
        return wait

    def _offer(self, item: T, priority: int) -> bool:
        """Buffer, shed or reject ``item``; False if it must wait for room."""
        items = self._items
        if (self._shed or self._reject) and items:
            victim = shed_victim(self._prios, priority) if self._shed else None
            if victim is None:
                if self._reject:
                    self._rejected += 1
                    depth = len(items)
                    telemetry.item_rejected("*", f"pressure_{self._name}_{self._level.value}")
                    raise PressureRejected(
                        f"mailbox {self._name!r} is {self._level.value} (depth {depth});"
                        " send rejected",
                        channel=self._name,
                        level=self._level.value,
                        depth=depth,
                    )
                self._dropped(item, priority)
                return True
            dropped, dropped_priority = items[victim], self._prios[victim]
            del items[victim]
            del self._prios[victim]
            items.append(item)
            self._prios.append(priority)
            self._sent += 1
            self._dropped(dropped, dropped_priority)
            return True
        depth = len(items)
        if depth >= self._capacity:
            return False
        items.append(item)
        self._prios.append(priority)
        self._sent += 1
        depth += 1
        if depth > self._max_depth:
            self._max_depth = depth
        if self._receivers:
            self._receivers.popleft().set()
        if depth >= self._rise_at:
            self._relevel(depth)
        return True

    def _dropped(self, item: T, priority: int) -> None:
        self._shed_count += 1
        telemetry.items_shed("*", 1, f"{self._name}_{self._level.value}")
        if self._on_shed is not None:
            self._on_shed(item, priority)

    # -- receiving -------------------------------------------------------------------

    async def receive(self) -> T:
        """The oldest buffered item, waiting for one if the mailbox is empty.

        Raises:
            anyio.EndOfStream: the mailbox is closed and empty.

        Cancellation: always a checkpoint; if cancelled, no item was taken.
        """
        await checkpoint()
        while True:
            if self._items:
                return self._pop()
            if self._closed:
                raise anyio.EndOfStream
            await self._wait(self._receivers)

    def receive_nowait(self) -> T:
        """The oldest buffered item, without waiting.

        Raises:
            anyio.WouldBlock: the mailbox is empty.
            anyio.EndOfStream: the mailbox is closed and empty.
        """
        if self._items:
            return self._pop()
        if self._closed:
            raise anyio.EndOfStream
        raise anyio.WouldBlock

    def _pop(self) -> T:
        item = self._items.popleft()
        self._prios.popleft()
        self._received += 1
        if self._senders:
            self._senders.popleft().set()
        depth = len(self._items)
        if depth < self._fall_below:
            self._relevel(depth)
        return item

    def __aiter__(self) -> Mailbox[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    # -- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """Refuse further sends; receivers get what is buffered, then ``EndOfStream``.

        Senders waiting for room (or a token) get ``anyio.ClosedResourceError``.
        Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        for waiters in (self._senders, self._receivers):
            while waiters:
                waiters.popleft().set()

    async def aclose(self) -> None:
        """:meth:`close`, as an async method (for ``anyio`` resource protocols)."""
        self.close()

    # -- waiting ---------------------------------------------------------------------

    async def _wait(self, waiters: deque[anyio.Event]) -> None:
        event = anyio.Event()
        waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                # Woken but cancelled before acting on it: pass the wake-up on so that
                # the room (or item) it announced is not left unused.
                if waiters:
                    waiters.popleft().set()
            else:
                waiters.remove(event)
            raise

    # -- pressure --------------------------------------------------------------------

    def _relevel(self, depth: int) -> None:
        policy = self._policy
        assert policy is not None
        old = self._level
        new = policy.next_level(old, depth, self._capacity)
        if new is old:  # pragma: no cover - thresholds are exact; kept for safety
            return
        self._enter(new)
        self._transitions += 1
        actions = self._actions
        telemetry.pressure_transition(
            channel=self._name,
            from_level=old.value,
            to_level=new.value,
            depth=depth,
            actions=[a.value for a in actions],
        )
        if self._on_transition is not None:
            self._on_transition(
                PressureTransition(
                    channel=self._name,
                    from_level=old,
                    to_level=new,
                    depth=depth,
                    capacity=self._capacity,
                    actions=actions,
                )
            )

    def _enter(self, level: PressureLevel) -> None:
        """Make ``level`` current: its actions, and the depths at which it is left."""
        policy = self._policy
        assert policy is not None
        self._level = level
        self._actions = actions = tuple(policy.actions_for(level))
        self._throttle = PressureAction.THROTTLE in actions
        self._degrade = PressureAction.DEGRADE in actions
        self._shed = PressureAction.SHED in actions
        self._reject = PressureAction.REJECT in actions
        rank = _RANK[level]
        capacity = self._capacity
        # next_level is monotone in depth, so the depths where the level changes are two
        # cut points, found by bisection: below ``fall_below`` it falls, from ``rise_at``
        # it rises. Between them no call into the policy is needed.
        self._rise_at = _first(
            lambda d: _RANK[policy.next_level(level, d, capacity)] > rank, capacity
        )
        self._fall_below = _first(
            lambda d: _RANK[policy.next_level(level, d, capacity)] >= rank, capacity
        )


_RANK = {PressureLevel.NORMAL: 0, PressureLevel.ELEVATED: 1, PressureLevel.CRITICAL: 2}


def _first(pred: Callable[[int], bool], capacity: int) -> int:
    """The least depth in ``[0, capacity]`` where the monotone ``pred`` holds, else
    ``capacity + 1``."""
    lo, hi = 0, capacity + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
