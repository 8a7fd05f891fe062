"""check_bounds: a struct's Meta bounds hold when it is built in Python, as when decoded."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import ValidationFailed, check_bounds


class Sample(msgspec.Struct, frozen=True):
    count: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    ratio: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.5
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None
    names: tuple[Annotated[str, msgspec.Meta(min_length=1)], ...] = ()
    label: Annotated[str, msgspec.Meta(max_length=3)] = "a"
    topics: tuple[str, ...] | None = None
    flag: bool = False

    def __post_init__(self) -> None:
        check_bounds(self)


def test_defaults_pass() -> None:
    assert Sample().count == 1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"count": 0}, "count"),
        ({"count": 101}, "count"),
        ({"count": True}, "count"),
        ({"count": "3"}, "count"),
        ({"ratio": 0.0}, "ratio"),
        ({"ratio": 1.0}, "ratio"),
        ({"ratio": float("nan")}, "ratio"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "1"}, "timeout"),
        ({"names": ("a", "")}, "names"),
        ({"label": "abcd"}, "label"),
        ({"flag": 1}, "flag"),
        ({"topics": ["a"]}, "topics"),
        ({"topics": (1,)}, "topics"),
    ],
)
def test_out_of_bounds_is_refused_with_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        Sample(**options)  # type: ignore[arg-type]
    assert info.value.field == field
    assert field in str(info.value)


def test_optional_none_and_ints_for_floats_pass() -> None:
    assert Sample(timeout=None, ratio=0.25, names=("x",)).timeout is None
    assert Sample(timeout=3).timeout == 3
    assert Sample(topics=None).topics is None
    assert Sample(topics=("a",)).topics == ("a",)


def test_lengths_are_named_in_the_value_s_unit() -> None:
    with pytest.raises(ValidationFailed, match="at most 3 character"):
        Sample(label="abcd")
    with pytest.raises(ValidationFailed, match="at least 1 character"):
        Sample(names=("",))


@given(st.integers(min_value=-1000, max_value=1000))
def test_python_and_decode_agree(count: int) -> None:
    """Building in Python refuses exactly what msgspec's decoder refuses."""
    try:
        Sample(count=count)
        built = True
    except ValidationFailed:
        built = False
    try:
        msgspec.convert({"count": count}, Sample)
        decoded = True
    except msgspec.ValidationError:
        decoded = False
    assert built == decoded == (1 <= count <= 100)
