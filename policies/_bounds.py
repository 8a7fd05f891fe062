"""One validation convention for configuration values.

A config struct declares its bounds on its fields with ``msgspec.Meta`` (``ge``, ``gt``,
``le``, ``lt``, ``min_length``, ``max_length``) and calls :func:`check_bounds` from its
``__post_init__``. msgspec enforces ``Meta`` only while decoding; this enforces the same
declaration when a struct is built in Python, so ``Config(x=0)`` and
``msgspec.convert({"x": 0}, Config)`` refuse the same values with the same typed error.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import msgspec
import msgspec.inspect as mi

from policies._errors import ValidationFailed

__all__ = ["check_bounds"]

_Checks = tuple[tuple[str, mi.Type], ...]
_COLLECTIONS: dict[type[mi.Type], type[Any]] = {
    mi.VarTupleType: tuple,
    mi.ListType: list,
    mi.FrozenSetType: frozenset,
    mi.SetType: set,
}


@functools.cache
def _fields(cls: type[Any]) -> _Checks:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return tuple((f.name, f.type) for f in info.fields)


def check_bounds(obj: msgspec.Struct) -> None:
    """Check every field of ``obj`` against the type and ``Meta`` bounds it declares.

    Raises:
        ValidationFailed: naming the first offending field (``field`` is set).
    """
    for name, kind in _fields(type(obj)):
        problem = _problem(getattr(obj, name), kind)
        if problem is not None:
            raise ValidationFailed(f"{name} {problem}", field=name)


def _problem(value: Any, kind: mi.Type) -> str | None:
    """Why ``value`` does not fit ``kind``, or None if it does."""
    if isinstance(kind, mi.UnionType):
        problems = [_problem(value, member) for member in kind.types]
        if any(p is None for p in problems):
            return None
        return next(p for p in problems if p is not None)
    if isinstance(kind, mi.NoneType):
        return None if value is None else "must be None"
    if isinstance(kind, mi.BoolType):
        return None if isinstance(value, bool) else f"must be true or false, not {value!r}"
    if isinstance(kind, mi.IntType):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, not {value!r}"
        return _number(value, kind)
    if isinstance(kind, mi.FloatType):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, not {value!r}"
        if math.isnan(value):
            return "must be a number, not NaN"
        return _number(value, kind)
    if isinstance(kind, mi.StrType | mi.BytesType):
        want = str if isinstance(kind, mi.StrType) else bytes
        if not isinstance(value, want):
            return f"must be {want.__name__}, not {value!r}"
        return _length(value, kind)
    if isinstance(kind, mi.VarTupleType | mi.ListType | mi.FrozenSetType | mi.SetType):
        want = _COLLECTIONS[type(kind)]
        if not isinstance(value, want):
            return f"must be a {want.__name__}, not {value!r}"
        problem = _length(value, kind)
        if problem is None:
            for element in value:
                problem = _problem(element, kind.item_type)
                if problem is not None:
                    return f"item {problem}"
        return problem
    # Nested structs, enums and the rest are checked by their own types.
    return None


def _number(value: float, kind: mi.IntType | mi.FloatType) -> str | None:
    if kind.ge is not None and not value >= kind.ge:
        return f"must be at least {kind.ge}, not {value!r}"
    if kind.gt is not None and not value > kind.gt:
        return f"must be greater than {kind.gt}, not {value!r}"
    if kind.le is not None and not value <= kind.le:
        return f"must be at most {kind.le}, not {value!r}"
    if kind.lt is not None and not value < kind.lt:
        return f"must be less than {kind.lt}, not {value!r}"
    return None


def _length(value: Any, kind: Any) -> str | None:
    units: dict[type[Any], str] = {str: "character(s)", bytes: "byte(s)"}
    unit = units.get(type(value), "element(s)")
    if kind.min_length is not None and len(value) < kind.min_length:
        return f"must have at least {kind.min_length} {unit}"
    if kind.max_length is not None and len(value) > kind.max_length:
        return f"must have at most {kind.max_length} {unit}"
    return None
