"""Ages as operators type them (``90``, ``15m``, ``7d``, ``never``) and as commands print them."""

from __future__ import annotations

from runtime.time_parse import parse_since

NEVER = "never"


def parse_age(text: str) -> float | None:
    """Seconds in an age, or None for ``never``.

    Raises:
        ValidationFailed: not a duration.
    """
    if text.strip().lower() in (NEVER, "none", "off"):
        return None
    return parse_since(text, allow_zero=True)


def format_age(seconds: float | None) -> str:
    """An age in the shortest exact unit (``7d``, ``2h``, ``90``), or ``never``."""
    if seconds is None:
        return NEVER
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}"
