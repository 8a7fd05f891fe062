"""When a failed work item runs again, and when it becomes a dead letter."""

from __future__ import annotations

import enum
import math

import msgspec


class FailureKind(enum.StrEnum):
    """How a handler failure is classified before the retry decision."""

    RETRYABLE = "retryable"
    TERMINAL = "terminal"
    TIMEOUT = "timeout"
    VALIDATION = "validation"


class RetryDecision(msgspec.Struct, frozen=True):
    """The outcome of :meth:`RetryPolicy.decide`.

    ``retry`` says whether the item runs again; ``delay_s`` is how long it waits first
    (0 when not retried); ``reason`` is the dead-letter reason class when not retried.
    """

    retry: bool
    delay_s: float
    reason: str | None


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Exponential backoff with a cap and jitter, and a line between retryable and terminal.

    The n-th retry waits ``min(max_delay_s, base_delay_s * multiplier ** (n - 1))``,
    scaled by a factor in ``[1 - jitter, 1 + jitter]`` drawn from the ``rand`` argument,
    and never more than ``max_delay_s``. Errors whose class name is in ``terminal_errors``
    (or that the caller classifies as terminal or validation failures) are never retried.

    The policy reads no clock and no random source: both come in as arguments.
    """

    max_attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0
    multiplier: float = 2.0
    jitter: float = 0.1
    terminal_errors: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not all(map(math.isfinite, (self.base_delay_s, self.max_delay_s, self.multiplier))):
            # NaN would make every backoff NaN: the item's available_at compares false
            # forever and it is never leased again.
            raise ValueError("delays and multiplier must be finite numbers")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("delays must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    def backoff(self, attempt: int, rand: float = 0.5) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        ``rand`` is a number in ``[0, 1)``; 0.5 means no jitter.
        """
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        # Exponent capped so huge attempt numbers cannot overflow a float.
        exponent = min(attempt - 1, 1024)
        try:
            raw = self.base_delay_s * self.multiplier**exponent
        except OverflowError:
            raw = self.max_delay_s
        capped = min(self.max_delay_s, raw)
        factor = 1.0 + self.jitter * (2.0 * min(max(rand, 0.0), 1.0) - 1.0)
        return min(self.max_delay_s, max(0.0, capped * factor))

    def classify(self, error_type: str, kind: FailureKind | None = None) -> FailureKind:
        """Classify an error by its class name, unless the caller already knows its kind."""
        if kind is not None:
            return kind
        if error_type in self.terminal_errors:
            return FailureKind.TERMINAL
        return FailureKind.RETRYABLE

    def decide(
        self,
        attempt: int,
        max_attempts: int | None = None,
        kind: FailureKind = FailureKind.RETRYABLE,
        rand: float = 0.5,
    ) -> RetryDecision:
        """Decide what happens after attempt number ``attempt`` failed.

        ``max_attempts`` overrides the policy's own cap (items carry their own).
        """
        cap = self.max_attempts if max_attempts is None else max_attempts
        if kind is FailureKind.TERMINAL:
            return RetryDecision(retry=False, delay_s=0.0, reason="terminal_error")
        if kind is FailureKind.VALIDATION:
            return RetryDecision(retry=False, delay_s=0.0, reason="validation")
        if attempt >= cap:
            reason = "timeout" if kind is FailureKind.TIMEOUT else "retries_exhausted"
            return RetryDecision(retry=False, delay_s=0.0, reason=reason)
        return RetryDecision(retry=True, delay_s=self.backoff(attempt, rand), reason=None)
