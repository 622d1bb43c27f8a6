"""Spans of time as people write them: ``90``, ``"90s"``, ``"15m"``, ``"1h"``,
``"2d"``, ``"1h30m"``, or a :class:`~datetime.timedelta`.

One reading for the settings file and the libraries, so ``keep_results = "1h"``
and ``keep_result="1h"`` mean the same.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

__all__ = ["Duration", "parse_duration"]

Duration = float | int | str | timedelta
"""What :func:`parse_duration` takes."""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(value: Duration) -> float:
    """Seconds in ``value``, at least 0.

    Raises:
        ValueError: not a number, a timedelta or text such as ``"1h30m"``
            (units s, m, h, d, w), or negative.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value.strip().lower())
    else:
        raise ValueError(f"not a duration: {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be finite and at least 0, not {value!r}")
    return seconds


def _parse_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (write seconds, or e.g. 90s, 15m, 1h30m, 2d)")
    return sum(float(n) * _UNITS[u] for n, u in parts)
