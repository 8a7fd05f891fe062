"""Small shared helpers for building configuration and unwrapping task-group errors."""

from __future__ import annotations

from typing import Any, TypeVar

from runtime._errors import ValidationFailed

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


def build(cls: type[T], **options: Any) -> T:
    """``cls(**options)`` with a typed error: a config struct's ``ValueError``/``TypeError``
    becomes :class:`ValidationFailed` (so the CLI reports it as bad input, exit 2).

    A :class:`ValidationFailed` the struct raised itself passes through as it is (its
    ``field`` kept).

    Raises:
        ValidationFailed: an option is out of bounds or of the wrong type.
    """
    try:
        return cls(**options)
    except ValidationFailed:
        raise
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(str(exc)) from exc


def first_leaf(group: BaseExceptionGroup[E]) -> E:
    """The first exception in a (possibly nested) group: what a task group wrapped."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf  # type: ignore[return-value]
