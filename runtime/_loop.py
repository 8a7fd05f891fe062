"""Hot-path access to the running event loop, for code that runs on Trio or asyncio.

anyio looks the backend up on every call; code that runs once per item binds these once
per task instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import anyio
import sniffio
from anyio.streams.memory import MemoryObjectReceiveStream

T = TypeVar("T")


def fast_clock() -> Callable[[], float]:
    """The running event loop's clock (what ``anyio.current_time`` reads), without anyio's
    per-call backend lookup."""
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.current_time
    return asyncio.get_running_loop().time


async def receive_within(stream: MemoryObjectReceiveStream[T], timeout: float) -> T | None:
    """The next item of ``stream``, or None if none came within ``timeout`` seconds.

    An item already buffered is taken without a cancel scope: under load that is every
    call, and a scope per item is a measurable share of a pipeline's per-item cost.

    Raises:
        anyio.EndOfStream: the stream is closed and empty.
    """
    try:
        return stream.receive_nowait()
    except anyio.WouldBlock:
        pass
    with anyio.move_on_after(timeout):
        return await stream.receive()
    return None
