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
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio
import sniffio
from anyio.lowlevel import checkpoint

from policies import PressureAction, PressureLevel, PressurePolicy, shed_victim
from runtime import telemetry
from runtime._errors import PressureRejected
from runtime.actors._pressure import ShedHook, TransitionHook, _Levels
from runtime.actors._statistics import MailboxStatistics

__all__ = ["Mailbox"]

T = TypeVar("T")


def fast_checkpoint() -> Callable[[], Awaitable[None]]:
    """The running event loop's checkpoint (what ``anyio.lowlevel.checkpoint`` does),
    without anyio's per-call backend lookup: about a tenth of a hop's cost on Trio."""
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.checkpoint
    return checkpoint


class Mailbox(_Levels, Generic[T]):
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
        "_blocked",
        "_bucket",
        "_checkpoint",
        "_closed",
        "_items",
        "_max_depth",
        "_on_shed",
        "_prios",
        "_received",
        "_receivers",
        "_refusal",
        "_rejected",
        "_senders",
        "_sent",
        "_shed_count",
        "_throttled",
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
        self._on_shed = on_shed
        self._items: deque[T] = deque()
        self._prios: deque[int] = deque()
        self._receivers: deque[anyio.Event] = deque()
        self._senders: deque[anyio.Event] = deque()
        self._closed = False
        # One flag for "closed or refusing" keeps the send path at a single test.
        self._blocked = False
        self._refusal: Callable[[], BaseException] | None = None
        # Bound at the first send or receive: a mailbox lives on one event loop (its
        # events do too).
        self._checkpoint: Callable[[], Awaitable[None]] | None = None
        self._bucket = policy.token_bucket() if policy is not None else None
        self._max_depth = 0
        self._sent = self._received = 0
        self._shed_count = self._rejected = self._throttled = 0
        self._init_levels(capacity, name, policy, on_transition)

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
        pause = self._checkpoint
        if pause is None:
            pause = self._checkpoint = fast_checkpoint()
        await pause()
        token = self._bucket is None
        while True:
            if self._blocked:
                raise self._refused()
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
        if self._blocked:
            raise self._refused()
        if self._throttle and self._take_token() > 0.0:
            raise anyio.WouldBlock
        if not self._offer(item, priority):
            raise anyio.WouldBlock

    def _refused(self) -> BaseException:
        if self._closed:
            return anyio.ClosedResourceError()
        assert self._refusal is not None
        return self._refusal()

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
        pause = self._checkpoint
        if pause is None:
            pause = self._checkpoint = fast_checkpoint()
        await pause()
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
        self._closed = self._blocked = True
        for waiters in (self._senders, self._receivers):
            while waiters:
                waiters.popleft().set()

    async def aclose(self) -> None:
        """:meth:`close`, as an async method (for ``anyio`` resource protocols)."""
        self.close()

    # -- refusing (an actor that is down) ---------------------------------------------

    def _refuse(self, error: Callable[[], BaseException]) -> None:
        """Make every send raise ``error()`` (senders waiting for room too) until
        :meth:`_accept`; what is buffered stays and can still be received."""
        self._refusal = error
        self._blocked = True
        senders = self._senders
        while senders:
            senders.popleft().set()

    def _accept(self) -> None:
        """Undo :meth:`_refuse` (a closed mailbox stays closed)."""
        self._refusal = None
        self._blocked = self._closed

    def _remove_if(self, pred: Callable[[T], bool]) -> list[T]:
        """Take every buffered item matching ``pred`` out of the buffer, in order.

        They count neither as received nor as shed; the level follows the new depth.
        """
        kept: deque[T] = deque()
        prios: deque[int] = deque()
        taken: list[T] = []
        for item, priority in zip(self._items, self._prios, strict=True):
            if pred(item):
                taken.append(item)
            else:
                kept.append(item)
                prios.append(priority)
        if taken:
            self._items, self._prios = kept, prios
            depth = len(kept)
            for _ in range(min(len(taken), len(self._senders))):
                self._senders.popleft().set()
            if depth < self._fall_below:
                self._relevel(depth)
        return taken

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
