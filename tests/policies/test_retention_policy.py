"""Properties of RetentionPolicy: cut-offs are ``now - age``; None keeps forever."""

from __future__ import annotations

import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import given

from policies import RetentionCutoffs, RetentionPolicy

ages = st.none() | st.floats(min_value=0, max_value=1e9, allow_nan=False)
nows = st.floats(min_value=0, max_value=4e9, allow_nan=False)
FIELDS = ("succeeded_s", "archived_s", "dead_letters_s", "audit_s")


@given(succeeded=ages, archived=ages, dead=ages, audit=ages, now=nows)
def test_cutoffs_are_now_minus_age_and_none_keeps_forever(
    succeeded: float | None,
    archived: float | None,
    dead: float | None,
    audit: float | None,
    now: float,
) -> None:
    policy = RetentionPolicy(
        succeeded_s=succeeded, archived_s=archived, dead_letters_s=dead, audit_s=audit
    )
    cut = policy.cutoffs(now)

    def expect(age: float | None) -> float | None:
        return None if age is None else now - age

    assert cut == RetentionCutoffs(
        succeeded_before=expect(succeeded),
        archived_before=expect(archived),
        dead_letters_before=expect(dead),
        audit_before=expect(audit),
    )


@given(age=ages, finished=nows, now=nows)
def test_is_expired_agrees_with_the_cutoff(age: float | None, finished: float, now: float) -> None:
    policy = RetentionPolicy()
    expired = policy.is_expired(finished, age, now)
    assert expired == (age is not None and finished < now - age)
    if age is None:
        assert not expired


def test_defaults_keep_live_dead_letters_and_audit_outlives_items() -> None:
    policy = RetentionPolicy()
    assert policy.dead_letters_s is None
    assert policy.succeeded_s == 7 * 86400
    assert policy.audit_s is not None and policy.archived_s is not None
    assert policy.audit_s > policy.succeeded_s


@pytest.mark.parametrize("field", FIELDS)
@given(age=st.floats(max_value=-1e-9, allow_nan=False) | st.just(float("nan")))
def test_negative_ages_are_refused(field: str, age: float) -> None:
    with pytest.raises(ValueError, match=field):
        RetentionPolicy(**{field: age})  # type: ignore[arg-type]


def test_unknown_fields_are_refused_when_decoding() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"succeeded_days": 3}, RetentionPolicy)
