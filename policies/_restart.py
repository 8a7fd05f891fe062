"""Restart intensity and restart backoff: when a supervisor must give up, and how long to wait.

Pure: no clock, no randomness of its own. The caller passes ``now`` (any monotonic clock, in
seconds) and, for jitter, a float in ``[0, 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated

import msgspec

from policies._bounds import check_bounds
from policies._errors import ValidationFailed

__all__ = ["Backoff", "RestartPolicy"]


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential delay before restarting a child that keeps failing.

    The nominal delay for the ``attempt``-th consecutive restart of one child (0-based) is
    ``d = min(max_s, min_s * multiplier ** attempt)``. Two independent randomisations spread
    children that fail together:

    * ``jitter`` shortens it: ``d * (1 - jitter * r1)`` (``jitter=0.25`` gives a delay in
      ``[0.75 * d, d]``);
    * ``random_factor`` lengthens it, as Akka's ``randomFactor``: ``* (1 + random_factor *
      r2)``, so a herd spreads *after* the nominal delay (the result may exceed ``max_s``
      by that factor).

    ``reset_after_s``: a child that stayed up at least this long starts its backoff over
    (Akka's ``resetBackoffAfter``); ``None`` uses the restart policy's ``period_s``.

    Raises:
        ValidationFailed: on construction (a ``ValueError``), naming the field: a negative
            bound, ``max_s < min_s``, ``multiplier < 1``, ``jitter`` outside ``[0, 1]``,
            a negative ``random_factor`` or a non-positive ``reset_after_s``.
    """

    min_s: Annotated[float, msgspec.Meta(ge=0.0)] = 0.1
    max_s: Annotated[float, msgspec.Meta(ge=0.0)] = 30.0
    multiplier: Annotated[float, msgspec.Meta(ge=1.0)] = 2.0
    jitter: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0
    random_factor: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] = 0.0
    reset_after_s: Annotated[float, msgspec.Meta(gt=0.0)] | None = None

    def __post_init__(self) -> None:
        check_bounds(self)
        if not self.min_s <= self.max_s:
            raise ValidationFailed(
                f"need min_s <= max_s, got min_s={self.min_s} max_s={self.max_s}", field="max_s"
            )

    def delay(self, attempt: int, rand: float = 0.0, rand_up: float = 0.0) -> float:
        """Seconds to wait before the ``attempt``-th consecutive restart (0-based).

        Args:
            attempt: how many times in a row this child was restarted before; negative
                values count as 0.
            rand: a float in ``[0, 1)`` for ``jitter``; 0 means no shortening.
            rand_up: an independent float in ``[0, 1)`` for ``random_factor``; 0 means
                no lengthening.
        """
        attempt = max(attempt, 0)
        # Compare in log space so a large attempt cannot overflow the float power.
        if self.min_s == 0.0:
            base = 0.0
        elif self.multiplier == 1.0 or attempt * math.log(self.multiplier) < (
            # Logs of each, not of the ratio: max_s / a subnormal min_s overflows.
            math.log(self.max_s) - math.log(self.min_s)
        ):
            try:
                base = self.min_s * self.multiplier**attempt
            except OverflowError:
                # Only for a subnormal min_s: the power overflows though the product fits.
                base = math.exp(math.log(self.min_s) + attempt * math.log(self.multiplier))
        else:
            base = self.max_s
        shorter = 1.0 - self.jitter * min(max(rand, 0.0), 1.0)
        longer = 1.0 + self.random_factor * min(max(rand_up, 0.0), 1.0)
        return base * shorter * longer


class RestartPolicy(msgspec.Struct, frozen=True):
    """OTP restart intensity: more than ``max_restarts`` restarts within ``period_s`` is fatal.

    The defaults are OTP's (``intensity=1, period=5``): a supervisor tolerates one restart in
    any five-second window, and the second one makes it give up, stop its children and fail
    to its parent, which sees a crashed child. A restart at time ``t`` is inside the window
    at ``now`` when ``now - t < period_s``, so restarts exactly ``period_s`` apart never add up.

    ``backoff`` optionally delays each restart (see :class:`Backoff`); ``None`` restarts at
    once, as OTP does.

    Raises:
        ValidationFailed: on construction (a ``ValueError``), if ``max_restarts < 0`` or
            ``period_s <= 0``, naming the field.
    """

    max_restarts: Annotated[int, msgspec.Meta(ge=0)] = 1
    period_s: Annotated[float, msgspec.Meta(gt=0.0)] = 5.0
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        check_bounds(self)

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

    def restart_delay(self, attempt: int, rand: float = 0.0, rand_up: float = 0.0) -> float:
        """Seconds to wait before a restart; 0.0 without a :class:`Backoff`.

        Args:
            attempt: consecutive restarts of the same child before this one (0-based).
            rand: a float in ``[0, 1)`` for jitter.
            rand_up: an independent float in ``[0, 1)`` for the random factor.
        """
        if self.backoff is None:
            return 0.0
        return self.backoff.delay(attempt, rand, rand_up)

    @property
    def reset_after_s(self) -> float:
        """Uptime after which a child's backoff starts over: the backoff's
        ``reset_after_s`` if set, else ``period_s``."""
        if self.backoff is not None and self.backoff.reset_after_s is not None:
            return self.backoff.reset_after_s
        return self.period_s

    def next_attempt(self, attempt: int, uptime_s: float) -> int:
        """The backoff attempt number for a child that failed after running ``uptime_s``.

        A child that stayed up for at least :attr:`reset_after_s` is considered healthy
        again, so its backoff starts over; otherwise the count goes on from ``attempt``.
        """
        return 0 if uptime_s >= self.reset_after_s else attempt
