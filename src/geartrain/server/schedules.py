"""Recurring schedules of the settings file, and where a SUBMIT_JOB_SCHED job runs.

Cron expressions and SUBMIT_JOB_SCHED's fields are read by :mod:`geartrain.cron`.
A SUBMIT_JOB_SCHED job runs once, at the next minute that matches.

A recurring schedule fires an ordinary background job at every matching
minute; the job's unique key names the schedule and the minute
(``cron:<name>:<YYYYmmddHHMM>``), the same on every server and restart.  A
server starts with the first matching minute after its start, so a restart
within a minute that fired does not fire it again; firings missed while the
server was down are not caught up.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..cron import Cron, parse_cron

__all__ = ["HISTORY", "Firing", "Recurring", "Schedule", "schedule_from_table"]

HISTORY = 50
"""Firings remembered per schedule, for the console."""


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


@dataclass(frozen=True, slots=True)
class Firing:
    """One firing of a schedule: its minute, and the job's handle (None when
    another member of the cluster submitted it, or it was refused)."""

    at: int
    handle: bytes | None


class Recurring:
    """Fires the recurring schedules at their minutes, with the core's timers and
    clock.  ``fire`` submits a firing's job and returns its handle, if this server
    holds it."""

    def __init__(
        self,
        fire: Callable[[Schedule, int], bytes | None],
        call_later: Callable[[float, Callable[[], None]], Any] | None,
        clock: Callable[[], float],
    ) -> None:
        self.fire = fire
        self.call_later = call_later
        self.clock = clock
        self.schedules: tuple[Schedule, ...] = ()
        self._timers: dict[str, Any] = {}
        self._fired: dict[str, int] = {}  # name -> the last minute fired, never fired twice
        self.history: dict[str, deque[Firing]] = {}

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
            handle = self.fire(schedule, when)
            history = self.history.setdefault(schedule.name, deque(maxlen=HISTORY))
            history.append(Firing(when, handle))
        self._arm(schedule)

    def last(self, name: str) -> int | None:
        """The minute the schedule last fired (since start), if it has."""
        return self._fired.get(name)

    def next_firing(self, schedule: Schedule) -> int | None:
        """The minute it fires next."""
        return schedule.cron.next_after(max(self.clock(), self._fired.get(schedule.name, 0)))

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
