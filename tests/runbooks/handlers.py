"""The handler the crash-recovery runbook restarts workers with."""

from __future__ import annotations

from runtime.store import WorkItem


def ok(item: WorkItem) -> None:
    """Succeed."""
