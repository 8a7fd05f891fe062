"""A handler that will not stop: it shields itself from cancellation (a fault test's)."""

from __future__ import annotations

import os

import trio

from runtime.store import WorkItem


async def stubborn(item: WorkItem) -> None:
    await trio.Path(os.environ["GARRISON_TEST_MARKER"]).write_text(item.id)
    with trio.CancelScope(shield=True):
        await trio.sleep(3600)
