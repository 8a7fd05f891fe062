"""Durations as operators type them: ``90``, ``90s``, ``15m``, ``2h``, ``7d``."""

from __future__ import annotations

import re

from runtime._errors import ValidationFailed

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_since(text: str, *, allow_zero: bool = False) -> float:
    """Seconds in a duration string.

    Raises:
        ValidationFailed: not a duration, or zero when ``allow_zero`` is False.
    """
    match = _PATTERN.match(text.lower())
    if match is None:
        raise ValidationFailed(
            f"{text!r} is not a duration (use seconds, or a number with s, m, h, d or w)",
            field="duration",
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds == 0 and not allow_zero:
        raise ValidationFailed("duration must be more than zero", field="duration")
    return seconds
