"""The bounded thread pool sync handlers run on, and what happens to a thread that hangs.

Python cannot stop a thread. A sync handler that outlives its timeout is *abandoned*: the
item fails with reason ``timeout`` at once, the pool's slot is given back at once (so new
items are not starved by a hung one), and the thread keeps running until its function
returns, when it is forgotten (its result is dropped). Abandoned threads are counted
(statistics, the ``garrison.handler.threads.abandoned`` counter, a warning line each).

The number of threads is bounded by ``threads + max_abandoned``: past ``max_abandoned``
threads abandoned and still running, each further one keeps one of the pool's own slots
until it ends, so hung handlers shrink the pool (reported as an error line) instead of
growing threads without bound.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import msgspec
from opentelemetry import metrics

__all__ = ["ThreadPool", "ThreadPoolStatistics"]

log = logging.getLogger("garrison.pipeline")

_abandoned_counter = metrics.get_meter("garrison").create_counter(
    "garrison.handler.threads.abandoned",
    unit="{thread}",
    description="Sync handler threads abandoned after their timeout (still running).",
)

_PENDING, _RUNNING, _DONE, _CANCELLED, _ABANDONED = range(5)


class ThreadPoolStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a :class:`ThreadPool`.

    Attributes:
        threads: the pool's slots (handlers running at once).
        busy: slots in use now.
        abandoned: abandoned threads still running now.
        abandoned_total: threads abandoned since the pool was made.
        max_abandoned: abandoned threads tolerated beside the pool's slots.
    """

    threads: int
    busy: int
    abandoned: int
    abandoned_total: int
    max_abandoned: int


class _Call:
    """One function call on its way to a thread; its state is shared under the pool lock."""

    __slots__ = ("args", "fn", "pool", "state")

    def __init__(self, pool: ThreadPool, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.pool = pool
        self.fn = fn
        self.args = args
        self.state = _PENDING

    def __call__(self) -> Any:
        lock = self.pool._lock
        with lock:
            if self.state == _CANCELLED:
                return None  # given up before it began: never run it
            self.state = _RUNNING
        try:
            return self.fn(*self.args)
        finally:
            with lock:
                if self.state == _ABANDONED:
                    self.pool._abandoned -= 1
                self.state = _DONE


class ThreadPool:
    """Runs sync handlers on at most ``threads`` threads at once.

    Args:
        threads: slots; a call waits for a free one.
        max_abandoned: abandoned threads tolerated beside the slots (see the module doc).
        name: used in log lines.
    """

    def __init__(self, threads: int, max_abandoned: int, *, name: str = "handlers") -> None:
        self.threads = threads
        self.max_abandoned = max_abandoned
        self.name = name
        self._lock = threading.Lock()
        self._abandoned = 0
        self._abandoned_total = 0
        # Made on first use: a limiter belongs to the running event loop.
        self._slots: anyio.CapacityLimiter | None = None
        self._os_threads: anyio.CapacityLimiter | None = None

    def statistics(self) -> ThreadPoolStatistics:
        """A snapshot of the pool."""
        return ThreadPoolStatistics(
            threads=self.threads,
            busy=0 if self._slots is None else self._slots.borrowed_tokens,
            abandoned=self._abandoned,
            abandoned_total=self._abandoned_total,
            max_abandoned=self.max_abandoned,
        )

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a thread of the pool; return its result or raise its error.

        Cancellation: returns at once; a call not begun yet never runs, one running is
        abandoned (counted, its slot given back, its thread left to finish).
        """
        slots = self._slots
        if slots is None:
            slots = self._slots = anyio.CapacityLimiter(self.threads)
            self._os_threads = anyio.CapacityLimiter(self.threads + self.max_abandoned)
        async with slots:
            call = _Call(self, fn, args)
            try:
                return await anyio.to_thread.run_sync(
                    call, abandon_on_cancel=True, limiter=self._os_threads
                )
            except BaseException:
                self._give_up(call)
                raise

    def _give_up(self, call: _Call) -> None:
        with self._lock:
            if call.state == _PENDING:
                call.state = _CANCELLED
                return
            if call.state != _RUNNING:
                return  # it finished: the exception is its own
            call.state = _ABANDONED
            self._abandoned += 1
            self._abandoned_total += 1
            abandoned = self._abandoned
        _abandoned_counter.add(1, {"garrison.pool": self.name})
        name = getattr(call.fn, "__qualname__", repr(call.fn))
        if abandoned > self.max_abandoned:
            log.error(
                "sync handler thread abandoned past the bound: the pool is down a slot"
                " until it ends",
                extra={"handler": name, "abandoned": abandoned, "bound": self.max_abandoned},
            )
        else:
            log.warning(
                "sync handler thread abandoned after its timeout (still running)",
                extra={"handler": name, "abandoned": abandoned},
            )
