"""Where a supervisor's child tasks live: a task group detached from the caller of ``run()``.

Trio cannot kill a task, and a task group cannot be left while one of its tasks runs. A child
that ignores its cancellation (catches ``Cancelled``, or shields itself) would therefore keep
its supervisor's ``run()``, and every parent's, from returning. So the children's task group
is not opened inside ``run()``: it is opened by a *host* task spawned outside the caller's
task tree (a Trio system task; a plain ``asyncio`` task on asyncio), and ``run()`` only talks
to it. When every child has ended, ``run()`` waits for the host to close, so the normal stop
is as structured as before. When a child is abandoned past its stop deadline, ``run()``
returns without waiting; the host keeps the abandoned task until it ends on its own.

What this guarantees, and what it cannot:

* the supervisor's ``run()`` and every parent's return within their stop deadlines;
* the abandoned task keeps running, shielded from nothing more than before, until it ends;
  its end is not reported again (its life was already reported ``abandoned``);
* the event loop itself (``trio.run`` / ``asyncio.run``) waits for its system or leftover
  tasks when it finishes, so a task that never ends keeps the loop from returning: a
  process that must exit regardless exits without returning from the loop (``os._exit``
  after flushing), which ``SupervisorStatistics.abandoned_total`` tells it to do.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import sniffio
from anyio.abc import TaskGroup

__all__ = ["ChildHost"]

# asyncio keeps only weak references to tasks: hold the hosts until they end.
_ASYNCIO_HOSTS: set[Any] = set()


def _spawn_detached(fn: Callable[[], Awaitable[None]], name: str) -> None:
    context = contextvars.copy_context()
    if sniffio.current_async_library() == "trio":
        import trio.lowlevel

        trio.lowlevel.spawn_system_task(fn, name=name, context=context)
        return
    import asyncio

    async def run() -> None:
        await fn()

    task = asyncio.get_running_loop().create_task(run(), name=name, context=context)
    _ASYNCIO_HOSTS.add(task)
    task.add_done_callback(_ASYNCIO_HOSTS.discard)


class ChildHost:
    """One supervisor run's child task group, owned by a detached host task."""

    __slots__ = ("_close", "_closed", "_ready", "tg")

    def __init__(self) -> None:
        self.tg: TaskGroup | None = None
        self._ready = anyio.Event()
        self._close = anyio.Event()
        self._closed = anyio.Event()

    async def open(self, name: str) -> TaskGroup:
        """Spawn the host and return its task group once it is open."""
        _spawn_detached(self._main, name)
        await self._ready.wait()
        assert self.tg is not None
        return self.tg

    def close(self) -> None:
        """Let the host leave its task group once every child task there has ended."""
        self._close.set()

    async def wait_closed(self) -> None:
        """Wait until the host has left its task group."""
        await self._closed.wait()

    async def _main(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self.tg = tg
                self._ready.set()
                # Child tasks never let an exception out (the engine hands errors to its
                # control task), so the group only ends once close() was called and every
                # child task, abandoned ones included, has ended.
                await self._close.wait()
        finally:
            self._ready.set()
            self._closed.set()
