"""Waiting in async code for work finished on another thread, without holding a thread.

The group-commit writer and the readers complete ``concurrent.futures.Future`` objects;
the waiting task is woken through its own event loop's thread-safe entry point (a Trio
token or asyncio's ``call_soon_threadsafe``), so thousands of waiters cost no threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

import anyio
import anyio.lowlevel
import sniffio

T = TypeVar("T")


def _loop_notifier() -> Callable[[Callable[[], object]], object]:
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    return asyncio.get_running_loop().call_soon_threadsafe


def _virtual_time() -> bool:
    """Whether Trio runs on a ``MockClock`` (tests), where waiting on a thread looks idle."""
    # A MockClock exists only once trio.testing is imported; importing it here would drag
    # pytest into every service process.
    testing = sys.modules.get("trio.testing")
    if testing is None or sniffio.current_async_library() != "trio":
        return False
    import trio

    return isinstance(trio.lowlevel.current_clock(), testing.MockClock)


async def wait_future(future: Future[T]) -> T:
    """Wait for ``future`` and return its result (or raise its exception).

    The wait is shielded from cancellation: the operation behind the future is already
    committed or about to be, and its result must reach the caller so that nothing it
    did (a lease, say) is forgotten. Cancellation is delivered at the next checkpoint.
    """
    with anyio.CancelScope(shield=True):
        if _virtual_time():
            # Under an autojump MockClock a task blocked on another thread counts as idle,
            # so virtual time would leap past every deadline while SQLite works. Staying
            # runnable keeps virtual time still: database work takes no virtual time.
            while not future.done():
                await anyio.lowlevel.checkpoint()
                # Block briefly instead of spinning, so the database thread gets the GIL.
                concurrent.futures.wait([future], timeout=0.0005)
        elif not future.done():
            event = anyio.Event()
            notify = _loop_notifier()

            def wake(_: Future[T]) -> None:
                # The loop may have ended already (RuntimeError): nobody is waiting then.
                with contextlib.suppress(RuntimeError):
                    notify(event.set)

            future.add_done_callback(wake)
            await event.wait()
    return future.result()


def in_thread(fn: Callable[[], T], name: str = "garrison-io") -> Future[T]:
    """Run ``fn`` on a new daemon thread; its future completes with the result."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
