"""Cron times: the five fields of a cron expression and of SUBMIT_JOB_SCHED.

A cron expression has five fields, minute (0-59), hour (0-23), day of month
(1-31), month (1-12) and day of week (0-6, Sunday 0; 7 is Sunday too), each
``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list
of those.  As in cron, when both day fields are restricted a day matching
either one matches.  Times are UTC.

SUBMIT_JOB_SCHED carries the same five fields, each a number or empty (any
value), as the PROTOCOL text describes: the client writes them, the server
reads them, both with the rules here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["Cron", "parse_cron", "sched_args", "sched_fields"]

_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_SEARCH_DAYS = 9 * 366  # 29 February comes back within 8 years, 31 February never


@dataclass(frozen=True, slots=True)
class Cron:
    """The allowed values of each field; ``*`` keeps its meaning for the day rule."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 Sunday .. 6 Saturday
    any_day: bool = True
    any_weekday: bool = True

    def matches(self, t: time.struct_time) -> bool:
        return (
            t.tm_min in self.minutes
            and t.tm_hour in self.hours
            and t.tm_mon in self.months
            and self._day_matches(t)
        )

    def _day_matches(self, t: time.struct_time) -> bool:
        day = t.tm_mday in self.days
        weekday = (t.tm_wday + 1) % 7 in self.weekdays  # struct_time: Monday is 0
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday

    def next_after(self, now: float) -> int | None:
        """The first matching minute strictly after ``now`` (epoch seconds), or None."""
        start = int(now // 60) + 1  # in minutes since the epoch
        first_day = start // 1440
        times = sorted(h * 60 + m for h in self.hours for m in self.minutes)
        for day in range(first_day, first_day + _SEARCH_DAYS):
            t = time.gmtime(day * 86400)
            if t.tm_mon not in self.months or not self._day_matches(t):
                continue
            earliest = start - day * 1440 if day == first_day else 0
            for minute in times:
                if minute >= earliest:
                    return (day * 1440 + minute) * 60
        return None


def _field(text: str, index: int) -> tuple[frozenset[int], bool]:
    low, high = _BOUNDS[index]
    name = _NAMES[index]
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = _number(step_text, name) if step_text else 1
        if step < 1:
            raise ValueError(f"cron {name}: step must be at least 1")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _number(a, name), _number(b, name)
        else:
            first = last = _number(span, name)
            if step_text:
                last = high
        if not (low <= first <= high and low <= last <= high) or first > last:
            raise ValueError(f"cron {name}: {part!r} is outside {low}-{high}")
        values.update(range(first, last + 1, step))
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values), text == "*"


def _number(text: str, name: str) -> int:
    if not text.isdigit():
        raise ValueError(f"cron {name}: {text!r} is not a number")
    return int(text)


def parse_cron(expression: str) -> Cron:
    """Parse ``"m h dom mon dow"``.

    Raises:
        ValueError: not five fields, or a field out of range.
    """
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError(f"cron expression {expression!r} must have 5 fields")
    fields = [_field(p, i) for i, p in enumerate(parts)]
    return Cron(
        fields[0][0],
        fields[1][0],
        fields[2][0],
        fields[3][0],
        fields[4][0],
        any_day=fields[2][1],
        any_weekday=fields[4][1],
    )


def sched_fields(minute: bytes, hour: bytes, mday: bytes, month: bytes, wday: bytes) -> Cron:
    """SUBMIT_JOB_SCHED's fields: each a number or empty for any value.

    Raises:
        ValueError: a field that is not a number in its range.
    """
    texts = []
    for raw in (minute, hour, mday, month, wday):
        text = raw.decode("ascii", errors="replace").strip()
        if text and not text.isdigit():
            raise ValueError(f"SUBMIT_JOB_SCHED field {text!r} is not a number")
        texts.append(text or "*")
    return parse_cron(" ".join(texts))


def sched_args(expression: str) -> tuple[bytes, ...]:
    """SUBMIT_JOB_SCHED's five fields for ``"m h dom mon dow"``, each a number or ``*``.

    Raises:
        ValueError: not five fields, a field that is neither a number nor ``*``
            (ranges, lists and steps are for recurring schedules), or a number
            out of its range.
    """
    parts = expression.split()
    for name, part in zip(_NAMES, parts, strict=False):
        if part != "*" and not part.isdigit():
            raise ValueError(
                f"cron {name}: {part!r}: a one-off job takes a number or * per field; "
                "a recurring schedule goes in the server's settings file"
            )
    parse_cron(expression)  # five fields, each in its range
    return tuple(b"" if part == "*" else part.encode() for part in parts)
