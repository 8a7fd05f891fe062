"""``garrison top``: a live terminal view of a queue (textual), read-only until the operator
replays or archives a dead letter."""

from runtime.tui._app import TopApp
from runtime.tui._config import TopConfig
from runtime.tui._model import History, Pressure, Snapshot, SortKey, TopicRow
from runtime.tui._reader import Detail, TopReader

__all__ = [
    "Detail",
    "History",
    "Pressure",
    "Snapshot",
    "SortKey",
    "TopApp",
    "TopConfig",
    "TopReader",
    "TopicRow",
]
