"""Handlers the operator fault tests run workers with."""

from __future__ import annotations

import time

from runtime.store import WorkItem


def slow(item: WorkItem) -> None:
    """Succeed after a short pause, so that workers are mid-run when a backup is taken."""
    time.sleep(0.01)
