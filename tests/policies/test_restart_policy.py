"""RestartPolicy and Backoff: pure intensity and delay decisions (time is an argument)."""

from __future__ import annotations

import math
import random
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import Backoff, RestartPolicy


def test_defaults_are_otp() -> None:
    policy = RestartPolicy()
    assert (policy.max_restarts, policy.period_s, policy.backoff) == (1, 5.0, None)
    assert policy.window == 1


def test_positional_construction() -> None:
    policy = RestartPolicy(3, 10.0, Backoff(min_s=1.0))
    assert policy.max_restarts == 3
    assert policy.period_s == 10.0
    assert policy.backoff == Backoff(min_s=1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_restarts": -1}, "max_restarts"),
        ({"period_s": 0.0}, "period_s"),
        ({"period_s": math.nan}, "period_s"),
    ],
)
def test_policy_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]


def test_exceeded_exactly_at_max_plus_one_within_period() -> None:
    policy = RestartPolicy(max_restarts=3, period_s=5.0)
    recent: list[float] = []
    for now in (0.0, 1.0, 2.0):
        assert not policy.intensity_exceeded(recent, now)
        recent.append(now)
    assert policy.intensity_exceeded(recent, 3.0)  # the 4th restart within 5 s


def test_not_exceeded_when_spread_wider_than_period() -> None:
    policy = RestartPolicy(max_restarts=3, period_s=5.0)
    recent: list[float] = []
    for now in (0.0, 2.0, 4.0, 5.0, 7.0, 9.0, 10.0):
        assert not policy.intensity_exceeded(recent, now)
        recent.append(now)


def test_window_is_half_open() -> None:
    # A restart exactly period_s ago no longer counts.
    policy = RestartPolicy(max_restarts=1, period_s=5.0)
    assert not policy.intensity_exceeded([0.0], 5.0)
    assert policy.intensity_exceeded([0.0], 4.999)


def test_zero_restarts_allowed_gives_up_at_once() -> None:
    assert RestartPolicy(max_restarts=0).intensity_exceeded([], 0.0)


def test_restart_delay_without_backoff_is_zero() -> None:
    assert RestartPolicy().restart_delay(10, 0.5) == 0.0


def test_backoff_grows_and_caps() -> None:
    backoff = Backoff(min_s=0.5, max_s=4.0, multiplier=2.0)
    assert [backoff.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.delay(-3) == 0.5
    assert backoff.delay(10_000) == 4.0  # no float overflow


def test_backoff_multiplier_one_and_zero_min() -> None:
    assert Backoff(min_s=1.0, max_s=9.0, multiplier=1.0).delay(50) == 1.0
    assert Backoff(min_s=0.0, max_s=9.0).delay(5) == 0.0


def test_backoff_jitter_shrinks_within_fraction() -> None:
    backoff = Backoff(min_s=2.0, max_s=2.0, jitter=0.25)
    assert backoff.delay(0, 0.0) == 2.0
    assert backoff.delay(0, 0.999999) == pytest.approx(1.5, abs=1e-5)
    assert backoff.delay(0, 7.0) == 1.5  # out-of-range randomness is clamped


def test_policy_delegates_delay_to_backoff() -> None:
    policy = RestartPolicy(backoff=Backoff(min_s=1.0, max_s=8.0))
    assert policy.restart_delay(2, 0.0) == 4.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_s": -1.0},
        {"min_s": 2.0, "max_s": 1.0},
        {"max_s": math.nan},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
    ],
)
def test_backoff_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_next_attempt_resets_after_a_healthy_period() -> None:
    policy = RestartPolicy(period_s=5.0)
    assert policy.next_attempt(3, 4.9) == 3
    assert policy.next_attempt(3, 5.0) == 0


def test_policies_are_frozen_values() -> None:
    policy = RestartPolicy()
    with pytest.raises(AttributeError):
        policy.max_restarts = 2  # type: ignore[misc]
    assert RestartPolicy(2, 1.0) == RestartPolicy(2, 1.0)
    assert hash(RestartPolicy(2, 1.0)) == hash(RestartPolicy(2, 1.0))


def _reference_exceeded(history: list[float], now: float, k: int, period: float) -> bool:
    """The OTP definition, literally: count every restart in the window, this one too."""
    return sum(1 for t in history if now - t < period) + 1 > k


@given(
    k=st.integers(min_value=0, max_value=6),
    period=st.sampled_from([0.5, 1.0, 5.0, 60.0]),
    gaps=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]), max_size=60),
)
def test_bounded_window_matches_full_history(k: int, period: float, gaps: list[float]) -> None:
    # The O(1) check over a deque(maxlen=window) agrees with counting the whole history.
    policy = RestartPolicy(max_restarts=k, period_s=period)
    recent: deque[float] = deque(maxlen=policy.window)
    history: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        expected = _reference_exceeded(history, now, k, period)
        assert policy.intensity_exceeded(recent, now) is expected
        if not expected:
            recent.append(now)
            history.append(now)
        assert len(recent) <= max(k, 0)


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    rand=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_backoff_delay_always_within_bounds(attempt: int, rand: float) -> None:
    backoff = Backoff(min_s=0.1, max_s=30.0, multiplier=3.0, jitter=0.5)
    delay = backoff.delay(attempt, rand)
    assert 0.05 <= delay <= 30.0


def test_backoff_with_seeded_random_is_reproducible() -> None:
    backoff = Backoff(min_s=1.0, max_s=10.0, jitter=1.0)
    a = [backoff.delay(n, random.Random(7).random()) for n in range(4)]
    b = [backoff.delay(n, random.Random(7).random()) for n in range(4)]
    assert a == b


_unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@given(
    min_s=st.floats(min_value=0.0, max_value=10.0),
    span=st.floats(min_value=0.0, max_value=100.0),
    multiplier=st.floats(min_value=1.0, max_value=10.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    random_factor=st.floats(min_value=0.0, max_value=5.0),
    attempt=st.integers(min_value=-5, max_value=10_000),
    rand=_unit,
    rand_up=_unit,
)
def test_backoff_randomisation_bounds(
    min_s: float,
    span: float,
    multiplier: float,
    jitter: float,
    random_factor: float,
    attempt: int,
    rand: float,
    rand_up: float,
) -> None:
    backoff = Backoff(
        min_s=min_s,
        max_s=min_s + span,
        multiplier=multiplier,
        jitter=jitter,
        random_factor=random_factor,
    )
    nominal = backoff.delay(attempt)
    assert min_s - 1e-9 <= nominal <= backoff.max_s + 1e-9 or min_s == 0.0
    delay = backoff.delay(attempt, rand, rand_up)
    low = nominal * (1.0 - jitter)
    high = nominal * (1.0 + random_factor)
    assert low - 1e-9 <= delay <= high + 1e-9
    # Only the random factor lengthens; only jitter shortens.
    assert backoff.delay(attempt, 0.0, rand_up) >= nominal - 1e-12
    assert backoff.delay(attempt, rand, 0.0) <= nominal + 1e-12


@given(factor=st.floats(min_value=0.01, max_value=2.0), rand_up=_unit)
def test_random_factor_is_akka_formula(factor: float, rand_up: float) -> None:
    backoff = Backoff(min_s=1.0, max_s=4.0, random_factor=factor)
    assert math.isclose(backoff.delay(5, 0.0, rand_up), 4.0 * (1.0 + rand_up * factor))


@given(
    period=st.floats(min_value=0.1, max_value=100.0),
    reset=st.floats(min_value=0.1, max_value=100.0),
    uptime=st.floats(min_value=0.0, max_value=200.0),
    attempt=st.integers(min_value=0, max_value=50),
)
def test_reset_after_is_independent_of_the_period(
    period: float, reset: float, uptime: float, attempt: int
) -> None:
    policy = RestartPolicy(1, period, Backoff(reset_after_s=reset))
    assert policy.reset_after_s == reset
    assert policy.next_attempt(attempt, uptime) == (0 if uptime >= reset else attempt)
    assert RestartPolicy(1, period, Backoff()).reset_after_s == period


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"random_factor": -0.1}, "random_factor"),
        ({"reset_after_s": 0.0}, "reset_after_s"),
        ({"min_s": 2.0, "max_s": 1.0}, "max_s"),
        ({"jitter": 1.5}, "jitter"),
    ],
)
def test_backoff_bounds_name_the_field(kwargs: dict[str, float], field: str) -> None:
    from policies import ValidationFailed

    with pytest.raises(ValidationFailed) as info:
        Backoff(**kwargs)
    assert info.value.field == field
