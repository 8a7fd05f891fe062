"""SIGINT/SIGTERM handling: the first signal stops gracefully, a second one at once."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable
from typing import Protocol

import anyio

log = logging.getLogger("garrison.worker")

EXIT_OK = 0
EXIT_DEADLINE = 3
EXIT_FORCED = 130

DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Graceful(Protocol):
    """Something that runs until told to stop, and says whether it stopped cleanly."""

    def stop(self) -> None:
        """Stop taking work; let work in hand finish up to a deadline."""

    def run(self) -> Awaitable[object]:
        """Run until stopped."""

    @property
    def stopped_cleanly(self) -> bool:
        """After ``run``: whether everything in hand finished before the deadline."""


async def run_until_signalled(
    target: Graceful, signals: tuple[signal.Signals, ...] = DEFAULT_SIGNALS
) -> int:
    """Run ``target`` until it finishes or is signalled; return a process exit code.

    0: finished (or stopped) with every in-flight item settled; 3: the shutdown deadline
    cut in-flight items short (their leases expire and they run again); 130: a second
    signal stopped it at once.
    """
    forced = False
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal forced
            seen = 0
            with anyio.open_signal_receiver(*signals) as received:
                async for signum in received:
                    seen += 1
                    if seen > 1:
                        log.warning("second signal: stopping now", extra={"signal": signum})
                        forced = True
                        tg.cancel_scope.cancel()
                        return
                    log.info("signal: draining in-flight items", extra={"signal": signum})
                    target.stop()

        tg.start_soon(watch)
        await target.run()
        tg.cancel_scope.cancel()
    if forced:
        return EXIT_FORCED
    return EXIT_OK if target.stopped_cleanly else EXIT_DEADLINE


__all__ = ["EXIT_DEADLINE", "EXIT_FORCED", "EXIT_OK", "Graceful", "run_until_signalled"]
