from __future__ import annotations

from runtime.store import WorkItem
from runtime.worker import TerminalError

SEEN: list[str] = []


def ok(item: WorkItem) -> None:
    SEEN.append(item.id)


def terminal(item: WorkItem) -> None:
    raise TerminalError("cannot be done")


NOT_CALLABLE = 3
