"""Fixtures shared by every test package: an injected clock that only moves when told."""

from __future__ import annotations

import pytest


class FakeClock:
    """A wall clock (seconds since the epoch) for injection; it moves only by ``advance``."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time."""
        assert seconds >= 0, "time does not go backwards"
        self.now += seconds
        return self.now


@pytest.fixture
def fake_clock() -> FakeClock:
    """A :class:`FakeClock` at a fixed start time."""
    return FakeClock()
