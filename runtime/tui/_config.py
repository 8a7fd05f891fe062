"""Settings of ``garrison top``: every bound a number here, with a safe default."""

from __future__ import annotations

import math
from typing import Annotated

import msgspec

from policies import check_bounds


class TopConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of the live view.

    Attributes:
        refresh_s: seconds between two reads of the store (bounded both ways: below
            0.5 s the reads would cost a busy worker, past 60 s the view is not live).
        window_s: the window of the windowed figures (throughput, failures, wait).
        history_s: the span the sparklines cover.
        max_history: most samples a sparkline keeps, whatever ``history_s/refresh_s``.
        dead_letter_rows: most dead letters listed (the newest ones).
        topic_sample: most rows one sampling read takes (per state for the topic depths,
            per event kind for the topic rates); past it the topic figures are estimates.
        max_topics: most topics the table holds.
        max_channels: most channels whose pressure level is kept.
        audit_rows: most audit events shown in a dead letter's detail.
        preview_bytes: most payload bytes shown in a dead letter's detail.
    """

    refresh_s: Annotated[float, msgspec.Meta(ge=0.5, le=60.0)] = 2.0
    window_s: Annotated[float, msgspec.Meta(ge=1.0, le=86_400.0)] = 60.0
    history_s: Annotated[float, msgspec.Meta(ge=10.0, le=3_600.0)] = 900.0
    max_history: Annotated[int, msgspec.Meta(ge=2, le=10_000)] = 900
    dead_letter_rows: Annotated[int, msgspec.Meta(ge=1, le=1_000)] = 200
    topic_sample: Annotated[int, msgspec.Meta(ge=10, le=1_000)] = 200
    max_topics: Annotated[int, msgspec.Meta(ge=1, le=1_000)] = 100
    max_channels: Annotated[int, msgspec.Meta(ge=1, le=1_000)] = 64
    audit_rows: Annotated[int, msgspec.Meta(ge=1, le=1_000)] = 50
    preview_bytes: Annotated[int, msgspec.Meta(ge=16, le=65_536)] = 512

    def __post_init__(self) -> None:
        check_bounds(self)

    @property
    def history_len(self) -> int:
        """Samples a sparkline keeps: ``history_s`` worth of refreshes, capped."""
        return max(2, min(self.max_history, math.ceil(self.history_s / self.refresh_s)))
