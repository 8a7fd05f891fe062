from __future__ import annotations

from runtime.store import WorkItem
from runtime.worker import TerminalError

SEEN: list[str] = []


def ok(item: WorkItem) -> None:
    SEEN.append(item.id)


def terminal(item: WorkItem) -> None:
    raise TerminalError("cannot be done")


NOT_CALLABLE = 3


def crash_first_attempt(item: WorkItem) -> None:
    """Fails each item's first attempt (with --let-it-crash, crashing its partition)."""
    if item.attempt == 1:
        raise ConnectionError("first attempt fails")
    SEEN.append(item.id)


def with_context(item: WorkItem, ctx: object) -> None:
    SEEN.append(f"{item.id}:{type(ctx).__name__}")


def three_arguments(item: WorkItem, ctx: object, extra: object) -> None:
    """Not a handler: refused before the database is touched."""
