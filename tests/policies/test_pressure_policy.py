"""PressurePolicy: hysteresis without flapping, actions per level, the token bucket's bound,
and the shed order. Pure: no event loop, time is an argument."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import assume, given

from policies import PressureAction, PressureLevel, PressurePolicy, TokenBucket, shed_victim

NORMAL, ELEVATED, CRITICAL = PressureLevel.NORMAL, PressureLevel.ELEVATED, PressureLevel.CRITICAL
RANK = {NORMAL: 0, ELEVATED: 1, CRITICAL: 2}


@st.composite
def policies(draw: st.DrawFn) -> PressurePolicy:
    """Any valid policy: 0 <= el < eh <= ch <= 1, el <= cl < ch."""
    fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
    a, b, c, d = sorted(draw(st.lists(fractions, min_size=4, max_size=4)))
    # el <= cl, eh <= ch, el < eh, cl < ch.
    el, eh, cl, ch = a, draw(st.sampled_from([b, c])), 0.0, d
    cl = c if eh == b else b
    assume(el < eh <= ch and el <= cl < ch)
    return PressurePolicy(elevated_low=el, elevated_high=eh, critical_low=cl, critical_high=ch)


def fill_levels(policy: PressurePolicy) -> dict[str, float]:
    return {
        "eh": policy.elevated_high,
        "el": policy.elevated_low,
        "ch": policy.critical_high,
        "cl": policy.critical_low,
    }


# -- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"elevated_low": 0.6, "elevated_high": 0.6},  # low must be below high
        {"elevated_low": -0.1},
        {"critical_high": 1.1},
        {"elevated_high": 0.95, "critical_high": 0.9},  # elevated above critical
        {"critical_low": 0.3},  # below elevated_low
        {"critical_low": 0.9, "critical_high": 0.9},
        {"elevated_low": math.nan},
        {"throttle_rate_per_s": 0.0},
        {"throttle_burst": 0.5},
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PressurePolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_is_a_validated_value_from_config() -> None:
    policy = msgspec.convert(
        {"elevated_high": 0.5, "elevated_low": 0.25, "critical": ["shed"]}, PressurePolicy
    )
    assert policy.critical == (PressureAction.SHED,)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"critical": ["explode"]}, PressurePolicy)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"nonsense": 1}, PressurePolicy)


# -- hysteresis --------------------------------------------------------------------------


def run(policy: PressurePolicy, depths: list[int], capacity: int) -> list[PressureLevel]:
    level, seen = NORMAL, []
    for depth in depths:
        level = policy.next_level(level, depth, capacity)
        seen.append(level)
    return seen


def test_levels_follow_the_marks_with_hysteresis() -> None:
    policy = PressurePolicy()  # elevated 60/40 %, critical 90/70 %
    depths = [0, 59, 60, 41, 40, 39, 60, 89, 90, 71, 70, 69, 40, 39]
    assert run(policy, depths, 100) == [
        NORMAL,
        NORMAL,
        ELEVATED,  # entered at its high mark
        ELEVATED,
        ELEVATED,  # still at the low mark
        NORMAL,  # left below it
        ELEVATED,
        ELEVATED,
        CRITICAL,
        CRITICAL,
        CRITICAL,
        ELEVATED,
        ELEVATED,
        NORMAL,
    ]


def test_no_flapping_at_a_single_threshold() -> None:
    policy = PressurePolicy()
    depths = [59, 60, 59, 60, 59, 61, 58, 60] * 10
    levels = run(policy, depths, 100)
    changes = sum(1 for a, b in zip([NORMAL, *levels], levels, strict=False) if a is not b)
    assert changes == 1
    assert levels[-1] is ELEVATED


def test_may_jump_straight_to_critical_and_back_to_normal() -> None:
    policy = PressurePolicy()
    assert policy.next_level(NORMAL, 95, 100) is CRITICAL
    assert policy.next_level(CRITICAL, 10, 100) is NORMAL
    assert policy.next_level(CRITICAL, 50, 100) is ELEVATED


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PressurePolicy().next_level(NORMAL, 0, 0)


def test_actions_per_level_and_leave_depth() -> None:
    policy = PressurePolicy(elevated=(PressureAction.DEGRADE,), critical=(PressureAction.REJECT,))
    assert policy.actions_for(NORMAL) == ()
    assert policy.actions_for(ELEVATED) == (PressureAction.DEGRADE,)
    assert policy.actions_for(CRITICAL) == (PressureAction.REJECT,)
    assert policy.leave_depth(CRITICAL, 100) == 69
    assert policy.leave_depth(ELEVATED, 100) == 39
    assert policy.next_level(CRITICAL, policy.leave_depth(CRITICAL, 100), 100) is ELEVATED
    bucket = policy.token_bucket()
    assert (bucket.rate_per_s, bucket.burst, bucket.tokens) == (1000.0, 100.0, 100.0)


@given(
    policy=policies(),
    capacity=st.integers(1, 500),
    steps=st.lists(st.integers(0, 500), min_size=1, max_size=60),
)
def test_level_changes_only_when_a_mark_is_crossed(
    policy: PressurePolicy, capacity: int, steps: list[int]
) -> None:
    """Up only at or above the new level's high mark; down only below the old level's low
    mark; and the level stays put whenever neither happened."""
    high = {ELEVATED: policy.elevated_high, CRITICAL: policy.critical_high}
    low = {ELEVATED: policy.elevated_low, CRITICAL: policy.critical_low}
    level = NORMAL
    for raw in steps:
        depth = min(raw, capacity)
        fill = depth / capacity
        new = policy.next_level(level, depth, capacity)
        if RANK[new] > RANK[level]:
            assert fill >= high[new]
        elif RANK[new] < RANK[level]:
            assert fill < low[level]
            if new is not NORMAL:
                assert fill >= low[new]
        else:
            # Stayed: no higher level's high mark was reached, the low mark not left.
            for up in (ELEVATED, CRITICAL):
                if RANK[up] > RANK[level]:
                    assert fill < high[up]
            if level is not NORMAL:
                assert fill >= low[level]
        # A level is consistent with the depth that produced it (idempotent).
        assert policy.next_level(new, depth, capacity) is new
        level = new


@given(policy=policies(), capacity=st.integers(1, 300), current=st.sampled_from(list(RANK)))
def test_next_level_is_monotone_in_depth(
    policy: PressurePolicy, capacity: int, current: PressureLevel
) -> None:
    ranks = [RANK[policy.next_level(current, d, capacity)] for d in range(capacity + 1)]
    assert ranks == sorted(ranks)


@given(
    policy=policies(),
    capacity=st.integers(1, 200),
    start=st.sampled_from([NORMAL, ELEVATED]),
    steps=st.lists(st.integers(0, 200), min_size=1, max_size=40),
)
def test_depths_inside_the_band_never_change_the_level(
    policy: PressurePolicy, capacity: int, start: PressureLevel, steps: list[int]
) -> None:
    """Between elevated's low and high marks the level is whatever it was before: normal
    stays normal and elevated stays elevated, however the depth moves (no flapping)."""
    band = [
        d
        for d in (min(s, capacity) for s in steps)
        if policy.elevated_low <= d / capacity < policy.elevated_high
    ]
    level = start
    for depth in band:
        level = policy.next_level(level, depth, capacity)
        assert level is start


# -- token bucket ------------------------------------------------------------------------


def test_token_bucket_grants_burst_then_rate() -> None:
    bucket = TokenBucket(rate_per_s=10.0, burst=3.0, tokens=3.0)
    granted = []
    for _ in range(4):
        ok, wait, bucket = bucket.take(100.0)
        granted.append((ok, round(wait, 9)))
    assert granted == [(True, 0.0), (True, 0.0), (True, 0.0), (False, 0.1)]
    ok, _, bucket = bucket.take(100.1)
    assert ok
    ok, wait, bucket = bucket.take(100.1)
    assert not ok and wait == pytest.approx(0.1)


def test_token_bucket_does_not_double_count_when_the_clock_steps_back() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=1.0, tokens=0.0, at=10.0)
    ok, wait, bucket = bucket.take(5.0)
    assert not ok and wait == pytest.approx(6.0)  # 5 s until 10, then 1 s for a token
    assert bucket.at == 10.0
    ok, _, bucket = bucket.take(11.0)
    assert ok
    ok, _, _ = bucket.take(11.0)
    assert not ok


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_per_s": 0.0, "burst": 1.0, "tokens": 0.0},
        {"rate_per_s": math.inf, "burst": 1.0, "tokens": 0.0},
        {"rate_per_s": 1.0, "burst": 0.5, "tokens": 0.0},
        {"rate_per_s": 1.0, "burst": 2.0, "tokens": 3.0},
        {"rate_per_s": 1.0, "burst": 2.0, "tokens": -1.0},
    ],
)
def test_token_bucket_validates(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TokenBucket(**kwargs)


def test_token_bucket_refuses_requests_it_could_never_grant() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=2.0, tokens=2.0)
    with pytest.raises(ValueError):
        bucket.take(0.0, 3.0)
    with pytest.raises(ValueError):
        bucket.take(0.0, 0.0)


@given(
    rate=st.floats(min_value=0.1, max_value=1000.0),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(min_value=-1.0, max_value=2.0), min_size=1, max_size=200),
)
def test_token_bucket_never_exceeds_its_rate_over_any_window(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """Over every window [t_i, t_j] the grants are at most burst + rate * (t_j - t_i),
    even with a clock that sometimes steps back (negative gaps)."""
    bucket = TokenBucket(rate_per_s=rate, burst=float(burst), tokens=float(burst))
    now, grants = 0.0, []
    for gap in gaps:
        now += gap
        ok, wait, bucket = bucket.take(now)
        assert wait >= 0.0
        if ok:
            grants.append(now)
        else:
            # Waiting as told is enough.
            assert bucket.take(now + wait + 1e-9)[0]
    effective = []
    high = -math.inf
    for t in grants:  # time as the bucket saw it: never backwards
        high = max(high, t)
        effective.append(high)
    for i in range(len(effective)):
        for j in range(i, len(effective)):
            window = effective[j] - effective[i]
            assert j - i + 1 <= burst + rate * window + 1e-6


# -- shed order --------------------------------------------------------------------------


def test_shed_victim_lowest_priority_then_newest() -> None:
    assert shed_victim([], 0) is None
    assert shed_victim([5, 1, 3, 1, 4], 2) == 3  # the newer of the two 1s
    assert shed_victim([5, 1, 3, 1, 4], 1) is None  # incoming is the newest of the 1s
    assert shed_victim([5, 1, 3, 1, 4], 0) is None  # incoming is the lowest
    assert shed_victim([2, 2, 2], 3) == 2


@given(buffered=st.lists(st.integers(-3, 3), max_size=30), incoming=st.integers(-3, 3))
def test_shed_victim_matches_the_documented_order(buffered: list[int], incoming: int) -> None:
    candidates = [*buffered, incoming]  # the incoming item is the newest
    order = sorted(range(len(candidates)), key=lambda i: (candidates[i], -i))
    expected = order[0]
    victim = shed_victim(buffered, incoming)
    assert (len(buffered) if victim is None else victim) == expected
