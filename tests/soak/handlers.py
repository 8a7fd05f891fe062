"""Handlers the multi-process tests run inside ``garrison work`` processes."""

from __future__ import annotations

import os
import signal
import time

from runtime.store import WorkItem


def steady(item: WorkItem) -> None:
    """A little real work per item, so a SIGKILL lands with items in flight."""
    time.sleep(0.0005)


def poison_kills(item: WorkItem) -> None:
    """Die the hard way on poison items, as a segfaulting extension would."""
    if item.topic == "poison":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.0005)
