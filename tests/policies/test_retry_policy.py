"""Properties of RetryPolicy: bounded, monotone backoff and a firm line on retries."""

from __future__ import annotations

import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import given

from policies import FailureKind, RetryDecision, RetryPolicy

delays = st.floats(min_value=0, max_value=1e6, allow_nan=False)
policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 50),
    base_delay_s=delays,
    max_delay_s=delays,
    multiplier=st.floats(min_value=1, max_value=100, allow_nan=False),
    jitter=st.floats(min_value=0, max_value=1),
)
attempts = st.integers(1, 5000)
rands = st.floats(min_value=0, max_value=1) | st.floats(min_value=-5, max_value=5)


@given(policy=policies, attempt=attempts, rand=rands)
def test_backoff_never_exceeds_max_delay_or_goes_negative(
    policy: RetryPolicy, attempt: int, rand: float
) -> None:
    delay = policy.backoff(attempt, rand)
    assert 0.0 <= delay <= policy.max_delay_s


@given(policy=policies, attempt=attempts)
def test_backoff_is_monotone_in_attempt_without_jitter(policy: RetryPolicy, attempt: int) -> None:
    exact = msgspec.structs.replace(policy, jitter=0.0)
    assert exact.backoff(attempt) <= exact.backoff(attempt + 1)


@given(policy=policies, attempt=attempts)
def test_rand_one_half_means_no_jitter(policy: RetryPolicy, attempt: int) -> None:
    exact = msgspec.structs.replace(policy, jitter=0.0)
    assert policy.backoff(attempt, 0.5) == pytest.approx(exact.backoff(attempt))


@given(policy=policies, attempt=attempts, rand=rands)
def test_jitter_stays_within_its_band(policy: RetryPolicy, attempt: int, rand: float) -> None:
    center = msgspec.structs.replace(policy, jitter=0.0).backoff(attempt)
    delay = policy.backoff(attempt, rand)
    low = center * (1 - policy.jitter)
    high = min(policy.max_delay_s, center * (1 + policy.jitter))
    assert low - 1e-9 * max(1.0, center) <= delay <= high + 1e-9 * max(1.0, center)


def test_backoff_follows_the_documented_formula() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=30.0, multiplier=2.0, jitter=0.5)
    assert [policy.backoff(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert policy.backoff(3, rand=0.0) == 2.0
    assert policy.backoff(3, rand=1.0) == 6.0
    assert policy.backoff(10**9) == 30.0  # no overflow for huge attempt numbers


def test_backoff_survives_float_overflow() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0, multiplier=1e10)
    assert policy.backoff(1000) == 5.0


def test_backoff_is_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        RetryPolicy().backoff(0)


@given(policy=policies, attempt=st.integers(1, 100), cap=st.none() | st.integers(1, 100))
def test_decide_never_retries_at_or_after_max_attempts(
    policy: RetryPolicy, attempt: int, cap: int | None
) -> None:
    limit = policy.max_attempts if cap is None else cap
    for kind in (FailureKind.RETRYABLE, FailureKind.TIMEOUT):
        decision = policy.decide(attempt, cap, kind)
        if attempt >= limit:
            assert not decision.retry
            assert decision.delay_s == 0.0
            expected = "timeout" if kind is FailureKind.TIMEOUT else "retries_exhausted"
            assert decision.reason == expected
        else:
            assert decision.retry and decision.reason is None
            assert decision.delay_s == policy.backoff(attempt)


@given(policy=policies, attempt=st.integers(1, 100), rand=rands)
def test_terminal_and_validation_failures_are_never_retried(
    policy: RetryPolicy, attempt: int, rand: float
) -> None:
    terminal = policy.decide(attempt, 1000, FailureKind.TERMINAL, rand)
    assert terminal == RetryDecision(retry=False, delay_s=0.0, reason="terminal_error")
    invalid = policy.decide(attempt, 1000, FailureKind.VALIDATION, rand)
    assert invalid == RetryDecision(retry=False, delay_s=0.0, reason="validation")


@given(names=st.frozensets(st.text(min_size=1, max_size=10), max_size=5), name=st.text(max_size=10))
def test_classify_by_terminal_error_names(names: frozenset[str], name: str) -> None:
    policy = RetryPolicy(terminal_errors=names)
    expected = FailureKind.TERMINAL if name in names else FailureKind.RETRYABLE
    assert policy.classify(name) is expected


def test_classify_keeps_a_kind_the_caller_knows() -> None:
    policy = RetryPolicy(terminal_errors=frozenset({"KeyError"}))
    assert policy.classify("KeyError", FailureKind.TIMEOUT) is FailureKind.TIMEOUT
    assert policy.classify("OSError", FailureKind.VALIDATION) is FailureKind.VALIDATION


@pytest.mark.parametrize(
    "fields",
    [
        {"max_attempts": 0},
        {"base_delay_s": -1.0},
        {"max_delay_s": -0.1},
        {"multiplier": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"jitter": float("nan")},
        {"base_delay_s": float("nan")},
        {"max_delay_s": float("nan")},
        {"max_delay_s": float("inf")},
        {"multiplier": float("nan")},
    ],
)
def test_invalid_construction_raises(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**fields)  # type: ignore[arg-type]


def test_unknown_fields_are_refused_when_decoding() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"max_attempts": 3, "retries": 4}, RetryPolicy)
    assert msgspec.convert({"max_attempts": 3}, RetryPolicy).max_attempts == 3
