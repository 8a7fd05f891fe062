"""Replaying dead letters: selection, dry runs, partitioned supervised workers, guards."""

from runtime.replay._service import (
    ReplayConfig,
    ReplayOutcome,
    ReplayReport,
    ReplaySelection,
    ReplayService,
    replay_config,
    select,
)

__all__ = [
    "ReplayConfig",
    "ReplayOutcome",
    "ReplayReport",
    "ReplaySelection",
    "ReplayService",
    "replay_config",
    "select",
]
