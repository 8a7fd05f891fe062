"""Pressure: levels with hysteresis, the actions each level calls for, and a token bucket.

Watermarks are fractions of a channel's capacity. A level is entered when the depth
reaches its high mark and left only when the depth falls below its low mark, so a depth
hovering at one threshold cannot make the level flap.

Priorities follow the store's convention: a higher number is more important. Shedding
(:func:`shed_victim`) drops the lowest priority first and, among equals, the newest first
(as ``Store.shed`` does), an incoming item counting as the newest of all.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable

import msgspec


class PressureLevel(enum.StrEnum):
    """How loaded a channel is."""

    NORMAL = "normal"
    ELEVATED = "elevated"
    CRITICAL = "critical"


class PressureAction(enum.StrEnum):
    """What the runtime does at a level."""

    THROTTLE = "throttle"
    DEGRADE = "degrade"
    SHED = "shed"
    REJECT = "reject"


_EPSILON = 1e-9

_RANK = {PressureLevel.NORMAL: 0, PressureLevel.ELEVATED: 1, PressureLevel.CRITICAL: 2}


class TokenBucket(msgspec.Struct, frozen=True):
    """A token bucket as a value: ``take`` returns the decision and the next bucket.

    ``rate_per_s`` tokens accrue per second up to ``burst``; time is an argument. Over any
    window of ``w`` seconds at most ``burst + rate_per_s * w`` tokens are taken. A ``now``
    earlier than the bucket's last ``at`` (a clock that stepped back) accrues nothing and
    does not move ``at`` back, so no token is ever counted twice.

    Raises:
        ValueError: on construction, a rate that is not a positive finite number, a burst
            below 1 (or not finite), or ``tokens`` outside ``[0, burst]``.
    """

    rate_per_s: float
    burst: float
    tokens: float
    at: float | None = None

    def __post_init__(self) -> None:
        if not (0 < self.rate_per_s < math.inf):
            raise ValueError("rate_per_s must be a positive finite number")
        if not (1 <= self.burst < math.inf):
            raise ValueError("burst must be a finite number, at least 1")
        if not 0 <= self.tokens <= self.burst:
            raise ValueError("tokens must be within [0, burst]")

    def take(self, now: float, n: float = 1.0) -> tuple[bool, float, TokenBucket]:
        """Try to take ``n`` tokens at ``now``: (allowed, seconds to wait if not, bucket).

        Raises:
            ValueError: ``n`` is not within ``(0, burst]`` (it could never be granted).
        """
        if not 0 < n <= self.burst:
            raise ValueError(f"n must be within (0, burst={self.burst}], got {n}")
        at = now if self.at is None else max(self.at, now)
        elapsed = 0.0 if self.at is None else at - self.at
        tokens = min(self.burst, self.tokens + elapsed * self.rate_per_s)
        if tokens + _EPSILON >= n:  # a wait computed by us is always enough, despite rounding
            return True, 0.0, TokenBucket(self.rate_per_s, self.burst, max(0.0, tokens - n), at)
        wait = (n - tokens) / self.rate_per_s
        return False, wait + (at - now), TokenBucket(self.rate_per_s, self.burst, tokens, at)


class PressurePolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Watermarks with hysteresis and actions per level.

    Attributes:
        elevated_high: enter ``elevated`` at this fraction of capacity.
        elevated_low: leave ``elevated`` (for ``normal``) below this fraction.
        critical_high: enter ``critical`` at this fraction.
        critical_low: leave ``critical`` (for ``elevated``) below this fraction.
        elevated: actions while elevated.
        critical: actions while critical.
        throttle_rate_per_s: admission rate while throttling.
        throttle_burst: tokens a throttled producer may use at once.
        shed_dead_letter: shed items become dead letters (reason ``shed``) instead of
            being dropped; either way each is counted.

    Raises:
        ValueError: marks out of order (need ``0 <= elevated_low < elevated_high``,
            ``critical_low < critical_high <= 1``, ``elevated_high <= critical_high``,
            ``elevated_low <= critical_low``) or a non-positive rate or burst.
    """

    elevated_high: float = 0.6
    elevated_low: float = 0.4
    critical_high: float = 0.9
    critical_low: float = 0.7
    elevated: tuple[PressureAction, ...] = (PressureAction.THROTTLE, PressureAction.DEGRADE)
    critical: tuple[PressureAction, ...] = (
        PressureAction.THROTTLE,
        PressureAction.DEGRADE,
        PressureAction.SHED,
        PressureAction.REJECT,
    )
    throttle_rate_per_s: float = 1000.0
    throttle_burst: float = 100.0
    shed_dead_letter: bool = True

    def __post_init__(self) -> None:
        marks = (self.elevated_low, self.elevated_high, self.critical_low, self.critical_high)
        if not all(math.isfinite(m) for m in marks):
            raise ValueError("watermarks must be finite")
        if not 0 <= self.elevated_low < self.elevated_high <= self.critical_high <= 1:
            raise ValueError("need 0 <= elevated_low < elevated_high <= critical_high <= 1")
        if not self.elevated_low <= self.critical_low < self.critical_high:
            raise ValueError("need elevated_low <= critical_low < critical_high")
        if not (self.throttle_rate_per_s > 0 and self.throttle_burst >= 1):
            raise ValueError("throttle rate must be positive and burst at least 1")

    def next_level(self, current: PressureLevel, depth: int, capacity: int) -> PressureLevel:
        """The level after observing ``depth`` out of ``capacity`` at ``current``.

        Up at a high mark (may jump straight to critical), down only below a low mark.
        """
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        fill = depth / capacity
        rank = _RANK[current]
        if fill >= self.critical_high:
            return PressureLevel.CRITICAL
        if rank == 2 and fill >= self.critical_low:
            return PressureLevel.CRITICAL
        if fill >= self.elevated_high or (rank >= 1 and fill >= self.elevated_low):
            return PressureLevel.ELEVATED
        return PressureLevel.NORMAL

    def actions_for(self, level: PressureLevel) -> tuple[PressureAction, ...]:
        """The actions in force at ``level``."""
        if level is PressureLevel.CRITICAL:
            return self.critical
        if level is PressureLevel.ELEVATED:
            return self.elevated
        return ()

    def leave_depth(self, level: PressureLevel, capacity: int) -> int:
        """The depth below which ``level`` is left (what shedding aims for)."""
        low = self.critical_low if level is PressureLevel.CRITICAL else self.elevated_low
        return max(0, math.ceil(low * capacity) - 1)

    def token_bucket(self) -> TokenBucket:
        """A full bucket at this policy's throttle rate."""
        return TokenBucket(self.throttle_rate_per_s, self.throttle_burst, self.throttle_burst)


def shed_victim(buffered: Iterable[int], incoming: int) -> int | None:
    """Which item to drop when one must go: an index into ``buffered``, or ``None``.

    ``buffered`` are the priorities of the items waiting, oldest first; ``incoming`` is the
    priority of the item arriving. The lowest priority goes first and, among equals, the
    newest: so the result is ``None`` (drop the incoming item, the newest of all) unless
    some buffered item has a strictly lower priority, in which case it is the index of the
    newest buffered item with the lowest priority.
    """
    victim: int | None = None
    lowest = incoming
    for index, priority in enumerate(buffered):
        if priority < lowest or (victim is not None and priority == lowest):
            victim, lowest = index, priority
    return victim
