"""Cron-style times: SUBMIT_JOB_SCHED and the recurring schedules of the settings file.

A cron expression has five fields, minute (0-59), hour (0-23), day of month
(1-31), month (1-12) and day of week (0-6, Sunday 0; 7 is Sunday too), each
``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list
of those.  As in cron, when both day fields are restricted a day matching
either one matches.  Times are UTC.

SUBMIT_JOB_SCHED carries the same five fields, each a number or empty (any
value), as the PROTOCOL text describes; the job runs once, at the next minute
that matches.

A recurring schedule fires an ordinary background job at every matching
minute; the job's unique key names the schedule and the minute
(``cron:<name>:<YYYYmmddHHMM>``), the same on every server and restart.  A
server starts with the first matching minute after its start, so a restart
within a minute that fired does not fire it again; firings missed while the
server was down are not caught up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Cron", "Recurring", "Schedule", "parse_cron", "schedule_from_table", "sched_fields"]

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


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recurring job from the settings file."""

    name: str
    cron: Cron
    expression: str
    function: bytes
    data: bytes
    priority: int = 1

    def unique(self, when: int) -> bytes:
        """The unique key of the firing at ``when``: the same on every server and restart."""
        return f"cron:{self.name}:{time.strftime('%Y%m%d%H%M', time.gmtime(when))}".encode()


_PRIORITIES = {"high": 0, "normal": 1, "low": 2}
_SCHEDULE_KEYS = {"name", "cron", "function", "payload", "priority"}


def schedule_from_table(table: Mapping[str, Any], where: str) -> Schedule:
    """A :class:`Schedule` from one ``[[schedules]]`` entry.

    Raises:
        ValueError: a missing or unknown key, or a bad cron expression.
    """
    unknown = set(table) - _SCHEDULE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    for key in ("name", "cron", "function"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise ValueError(f"{where}: {key} is required (a string)")
    payload = table.get("payload", "")
    priority = table.get("priority", "normal")
    if not isinstance(payload, str):
        raise ValueError(f"{where}: payload must be a string")
    if priority not in _PRIORITIES:
        raise ValueError(f"{where}: priority must be high, normal or low")
    try:
        cron = parse_cron(table["cron"])
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    name = table["name"]
    if len(f"cron:{name}:YYYYmmddHHMM") > 64:
        raise ValueError(f"{where}: name is too long for a unique key")
    return Schedule(
        name,
        cron,
        table["cron"],
        table["function"].encode(),
        payload.encode(),
        _PRIORITIES[priority],
    )


class Recurring:
    """Fires the recurring schedules at their minutes, with the core's timers and clock."""

    def __init__(
        self,
        fire: Callable[[Schedule, int], None],
        call_later: Callable[[float, Callable[[], None]], Any] | None,
        clock: Callable[[], float],
    ) -> None:
        self.fire = fire
        self.call_later = call_later
        self.clock = clock
        self.schedules: tuple[Schedule, ...] = ()
        self._timers: dict[str, Any] = {}
        self._fired: dict[str, int] = {}  # name -> the last minute fired, never fired twice

    def set(self, schedules: tuple[Schedule, ...]) -> None:
        """Replace the schedules (a reload keeps what was fired already)."""
        self.close()
        self.schedules = schedules
        for schedule in schedules:
            self._arm(schedule)

    def _arm(self, schedule: Schedule) -> None:
        if self.call_later is None:
            return
        now = self.clock()
        when = schedule.cron.next_after(max(now, self._fired.get(schedule.name, 0)))
        if when is None:
            return
        self._timers[schedule.name] = self.call_later(
            max(0.0, when - now), lambda: self._due(schedule, when)
        )

    def _due(self, schedule: Schedule, when: int) -> None:
        self._timers.pop(schedule.name, None)
        if self.clock() < when:  # a timer that fired early
            self._timers[schedule.name] = self.call_later(  # type: ignore[misc]
                when - self.clock(), lambda: self._due(schedule, when)
            )
            return
        if self._fired.get(schedule.name, 0) < when:
            self._fired[schedule.name] = when
            self.fire(schedule, when)
        self._arm(schedule)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
