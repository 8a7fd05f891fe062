"""SIGINT/SIGTERM handling: the first signal stops gracefully, a second one at once."""

from __future__ import annotations

import logging
import signal

import anyio

from runtime.worker._worker import Worker

log = logging.getLogger("garrison.worker")

EXIT_OK = 0
EXIT_DEADLINE = 3
EXIT_FORCED = 130


async def run_until_signalled(
    worker: Worker, signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
) -> int:
    """Run ``worker`` until it finishes or is signalled; return a process exit code.

    0: drained or stopped with every in-flight item settled; 3: the shutdown deadline
    cut in-flight items short (their leases expire and they run again); 130: a second
    signal stopped it at once.
    """
    forced = False
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal forced
            with anyio.open_signal_receiver(*signals) as received:
                async for signum in received:
                    if worker.statistics().stopping:
                        log.warning("second signal: stopping now", extra={"signal": signum})
                        forced = True
                        tg.cancel_scope.cancel()
                        return
                    log.info("signal: draining in-flight items", extra={"signal": signum})
                    worker.stop()

        tg.start_soon(watch)
        await worker.run()
        tg.cancel_scope.cancel()
    if forced:
        return EXIT_FORCED
    return EXIT_OK if worker.completed_shutdown else EXIT_DEADLINE
