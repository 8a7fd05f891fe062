"""Interpreter settings for processes that run Garrison's store threads.

The SQLite writer and readers are threads that give up the GIL on every statement and must
win it back to go on. CPython hands a contended GIL over only every *switch interval*
(5 ms by default), so while the event loop thread is busy with handlers, each statement of
the writer can wait that long: a pipeline then runs at a fraction of what the queue does
alone. A shorter interval lets the writer in sooner; pure-Python CPU work pays a little
more switching. The ``garrison`` commands apply :data:`DEFAULT_SWITCH_INTERVAL_S`;
services embedding a pipeline call :func:`tune_interpreter` themselves (it is
process-wide, so it is theirs to decide).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Final

from runtime._errors import ValidationFailed

__all__ = [
    "DEFAULT_SWITCH_INTERVAL_S",
    "SWITCH_INTERVAL_ENV",
    "switch_interval_from_env",
    "tune_interpreter",
]

#: bench/pipeline_throughput.py measures the pipeline at both intervals (bench/README.md).
DEFAULT_SWITCH_INTERVAL_S: Final = 0.0005
#: Environment variable the ``garrison`` commands read: seconds, or ``default`` to leave
#: Python's own setting alone.
SWITCH_INTERVAL_ENV: Final = "GARRISON_SWITCH_INTERVAL"
_BOUNDS: Final = (0.00005, 0.1)


def tune_interpreter(switch_interval_s: float | None = DEFAULT_SWITCH_INTERVAL_S) -> float:
    """Set the GIL switch interval (``None`` leaves it alone); return the previous one.

    Raises:
        ValidationFailed: the interval is outside 50 us .. 100 ms.
    """
    previous = sys.getswitchinterval()
    if switch_interval_s is not None:
        low, high = _BOUNDS
        if not low <= switch_interval_s <= high:
            raise ValidationFailed(
                f"switch interval must be between {low} and {high} seconds, "
                f"got {switch_interval_s!r}"
            )
        sys.setswitchinterval(switch_interval_s)
    return previous


def switch_interval_from_env(environ: Mapping[str, str] = os.environ) -> float | None:
    """The interval ``GARRISON_SWITCH_INTERVAL`` asks for (the default when unset; ``None``
    for ``default``).

    Raises:
        ValidationFailed: the value is neither a number nor ``default``.
    """
    raw = environ.get(SWITCH_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_SWITCH_INTERVAL_S
    if raw.lower() == "default":
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValidationFailed(
            f"{SWITCH_INTERVAL_ENV} must be seconds (e.g. 0.0005) or 'default', got {raw!r}"
        ) from None
