from __future__ import annotations

from runtime.store import WorkItem
from runtime.worker import TerminalError


def fail_bad(item: WorkItem) -> None:
    if item.topic == "bad":
        raise TerminalError("bad topic")
