"""Restart intensity and restart backoff: when a supervisor must give up, and how long to wait.

Pure: no clock, no randomness of its own. The caller passes ``now`` (any monotonic clock, in
seconds) and, for jitter, a float in ``[0, 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

__all__ = ["Backoff", "RestartPolicy"]


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential delay before restarting a child that keeps failing.

    The delay for the ``attempt``-th consecutive restart of one child (0-based) is
    ``min(max_s, min_s * multiplier ** attempt)``, then reduced by up to ``jitter`` of itself
    (``jitter=0.25`` gives a delay in ``[0.75 * d, d]``), so restarted children do not stampede
    a shared dependency in lockstep.

    Raises:
        ValueError: on construction, if a bound is negative, ``max_s < min_s``,
            ``multiplier < 1`` or ``jitter`` is outside ``[0, 1]``.
    """

    min_s: float = 0.1
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.min_s <= self.max_s) or math.isnan(self.max_s):
            raise ValueError(f"need 0 <= min_s <= max_s, got min_s={self.min_s} max_s={self.max_s}")
        if not self.multiplier >= 1.0:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")

    def delay(self, attempt: int, rand: float = 0.0) -> float:
        """Seconds to wait before the ``attempt``-th consecutive restart (0-based).

        Args:
            attempt: how many times in a row this child was restarted before; negative
                values count as 0.
            rand: a float in ``[0, 1)`` from the caller's random source; 0 means no jitter.
        """
        attempt = max(attempt, 0)
        # Compare in log space so a large attempt cannot overflow the float power.
        if self.min_s == 0.0:
            base = 0.0
        elif self.multiplier == 1.0 or attempt * math.log(self.multiplier) < math.log(
            self.max_s / self.min_s
        ):
            base = self.min_s * self.multiplier**attempt
        else:
            base = self.max_s
        return base * (1.0 - self.jitter * min(max(rand, 0.0), 1.0))


class RestartPolicy(msgspec.Struct, frozen=True):
    """OTP restart intensity: more than ``max_restarts`` restarts within ``period_s`` is fatal.

    The defaults are OTP's (``intensity=1, period=5``): a supervisor tolerates one restart in
    any five-second window, and the second one makes it give up, stop its children and fail
    to its parent, which sees a crashed child. A restart at time ``t`` is inside the window
    at ``now`` when ``now - t < period_s``, so restarts exactly ``period_s`` apart never add up.

    ``backoff`` optionally delays each restart (see :class:`Backoff`); ``None`` restarts at
    once, as OTP does.

    Raises:
        ValueError: on construction, if ``max_restarts < 0`` or ``period_s <= 0``.
    """

    max_restarts: int = 1
    period_s: float = 5.0
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts}")
        if not self.period_s > 0.0:
            raise ValueError(f"period_s must be > 0, got {self.period_s}")

    @property
    def window(self) -> int:
        """How many past restart times a caller must keep for :meth:`intensity_exceeded`.

        Only the newest ``max_restarts`` restart times can decide the answer, so a caller can
        keep them in a ``deque(maxlen=policy.window)`` and never grow.
        """
        return self.max_restarts

    def intensity_exceeded(self, recent: Sequence[float], now: float) -> bool:
        """Whether one more restart at ``now`` exceeds the intensity.

        Args:
            recent: times of the earlier restarts, oldest first (at least the newest
                :attr:`window` of them; older ones are ignored).
            now: the time of the restart being considered, on the same clock.

        Returns:
            True when the restarts in the window, this one included, exceed ``max_restarts``:
            the supervisor must give up instead of restarting.
        """
        k = self.max_restarts
        if k == 0:
            return True
        # Times are ascending, so the k-th newest is the oldest that could still be inside
        # the window together with k-1 newer ones and this restart: O(1) per decision.
        return len(recent) >= k and now - recent[-k] < self.period_s

    def restart_delay(self, attempt: int, rand: float = 0.0) -> float:
        """Seconds to wait before a restart; 0.0 without a :class:`Backoff`.

        Args:
            attempt: consecutive restarts of the same child before this one (0-based).
            rand: a float in ``[0, 1)`` for jitter.
        """
        if self.backoff is None:
            return 0.0
        return self.backoff.delay(attempt, rand)

    def next_attempt(self, attempt: int, uptime_s: float) -> int:
        """The backoff attempt number for a child that failed after running ``uptime_s``.

        A child that stayed up for at least ``period_s`` is considered healthy again, so its
        backoff starts over; otherwise the count goes on from ``attempt``.
        """
        return 0 if uptime_s >= self.period_s else attempt
