"""Per-function rates for the last hour, a bucket a minute: jobs processed, failed
and retried, and wait and run time percentiles, kept in memory so a page opened
now has history.

Bounded twice: :data:`MINUTES` buckets per function, and at most
``max_functions`` functions (the one idle longest is forgotten first).  Times
are counted in buckets growing by a quarter, so a percentile is exact to 25%
and a minute costs a few dozen numbers at most.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..server.model import Job

__all__ = ["MINUTES", "Rates"]

MINUTES = 60
MAX_FUNCTIONS = 1000
_KINDS = {
    "completed": 0,
    "failed": 1,
    "exception": 1,
    "timed_out": 1,
    "worker_lost": 1,
    "retried": 2,
    "requeued": 2,
}
"""Which count an event adds to: processed, failed (an attempt that failed), retried."""
_SMALLEST = 0.001  # seconds: the first bucket's top
_GROWTH = 1.25
_TOPS = tuple(_SMALLEST * _GROWTH**i for i in range(96))
"""Each time bucket's top: 1 ms growing by a quarter, to a few days; beyond, the last."""
PERCENTILES = (50, 90, 99)


def _bucket(seconds: float) -> int:
    return min(bisect_left(_TOPS, seconds), len(_TOPS) - 1)


def _top(index: int) -> float:
    return _TOPS[index]


def percentiles(counts: dict[int, int]) -> dict[str, float | None]:
    """p50, p90, p99 of times counted by bucket (each its bucket's top, in seconds)."""
    n = sum(counts.values())
    out: dict[str, float | None] = {}
    ordered = sorted(counts.items())
    for p in PERCENTILES:
        if not n:
            out[f"p{p}"] = None
            continue
        rank, seen = math.ceil(n * p / 100), 0
        for index, count in ordered:
            seen += count
            if seen >= rank:
                out[f"p{p}"] = round(_top(index), 4)
                break
    return out


class _Minute:
    __slots__ = ("minute", "processed", "failed", "retried", "wait", "run")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.processed = self.failed = self.retried = 0
        self.wait: dict[int, int] = {}
        self.run: dict[int, int] = {}

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.minute * 60,
            "processed": self.processed,
            "failed": self.failed,
            "retried": self.retried,
            "wait": percentiles(self.wait),
            "run": percentiles(self.run),
        }


class Rates:
    """The core's observer for rates; ``clock`` gives epoch seconds."""

    def __init__(self, clock: Callable[[], float], max_functions: int = MAX_FUNCTIONS) -> None:
        self.clock = clock
        self.max_functions = max_functions
        self.functions: OrderedDict[bytes, deque[_Minute]] = OrderedDict()

    def event(self, job: Job, kind: str) -> None:
        count = _KINDS.get(kind)
        if count is None:
            return
        now = self.clock()
        this = int(now // 60)
        series = self.functions.get(job.function.name)
        if series is not None and series[-1].minute == this:
            minute = series[-1]
        else:
            minute = self._minute(job.function.name, this)
        if count == 2:
            minute.retried += 1
            return
        if count:
            minute.failed += 1
        else:
            minute.processed += 1
        if job.started_at:
            wait = _bucket(job.started_at - job.created_at)
            run = _bucket(now - job.started_at)
            minute.wait[wait] = minute.wait.get(wait, 0) + 1
            minute.run[run] = minute.run.get(run, 0) + 1

    def _minute(self, name: bytes, now: int) -> _Minute:
        """A new minute's bucket (the order of functions is that of their latest new minute)."""
        functions = self.functions
        series = functions.get(name)
        if series is None:
            if len(functions) >= self.max_functions:
                functions.popitem(last=False)  # the function idle longest
            series = functions[name] = deque(maxlen=MINUTES)
        else:
            functions.move_to_end(name)
        series.append(_Minute(now))
        return series[-1]

    def hour(self, name: bytes) -> list[dict[str, Any]]:
        """The last :data:`MINUTES` minutes, oldest first, one bucket each (empty
        minutes included)."""
        now = int(self.clock() // 60)
        kept = {m.minute: m for m in self.functions.get(name, ())}
        return [kept.get(m, _Minute(m)).as_json() for m in range(now - MINUTES + 1, now + 1)]

    def recent(self, name: bytes, minutes: int = 5) -> dict[str, float]:
        """Processed, failed and retried per minute over the last ``minutes``."""
        since = int(self.clock() // 60) - minutes + 1
        totals = [0, 0, 0]
        for m in self.functions.get(name, ()):
            if m.minute >= since:
                totals[0] += m.processed
                totals[1] += m.failed
                totals[2] += m.retried
        return {
            k: round(v / minutes, 2)
            for k, v in zip(("processed", "failed", "retried"), totals, strict=True)
        }
