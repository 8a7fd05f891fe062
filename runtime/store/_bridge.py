"""Waiting in async code for work finished on another thread, without holding a thread.

The group-commit writer completes a ``concurrent.futures.Future``; the waiting task is
woken through its own event loop's thread-safe entry point (a Trio token or asyncio's
``call_soon_threadsafe``), so thousands of waiters cost no worker threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

import anyio
import sniffio

T = TypeVar("T")


def _loop_notifier() -> Callable[[Callable[[], object]], object]:
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    return asyncio.get_running_loop().call_soon_threadsafe


async def wait_future(future: Future[T]) -> T:
    """Wait for ``future`` and return its result (or raise its exception).

    The wait is shielded from cancellation: the operation behind the future is already
    committed or about to be, and its result must reach the caller so that nothing it
    did (a lease, say) is forgotten. Cancellation is delivered at the next checkpoint.
    """
    if not future.done():
        event = anyio.Event()
        notify = _loop_notifier()

        def wake(_: Future[T]) -> None:
            try:
                notify(event.set)
            except RuntimeError:  # pragma: no cover - the loop already ended
                pass

        future.add_done_callback(wake)
        with anyio.CancelScope(shield=True):
            await event.wait()
    return future.result()
