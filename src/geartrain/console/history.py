"""Per-second counts of submitted, completed and failed jobs for the console's chart."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from ..server.stats import Stats

__all__ = ["History"]


def _totals(stats: Stats) -> tuple[int, int, int]:
    failed = stats.failed + stats.exceptions + stats.timed_out + stats.dropped
    return stats.created + stats.coalesced, stats.completed, failed


class History:
    """A ring buffer of the last ``size`` seconds, sampled from the core's counters.

    Sampling the totals once a second costs the job path nothing."""

    def __init__(self, stats: Stats, size: int = 600) -> None:
        self.stats = stats
        self.points: deque[tuple[float, int, int, int]] = deque(maxlen=size)
        self._last = _totals(stats)

    def sample(self) -> tuple[float, int, int, int]:
        now = _totals(self.stats)
        last, self._last = self._last, now
        point = (round(time.time(), 1), now[0] - last[0], now[1] - last[1], now[2] - last[2])
        self.points.append(point)
        return point

    def as_json(self) -> dict[str, Any]:
        return {
            "fields": ["time", "submitted", "completed", "failed"],
            "points": [list(p) for p in self.points],
        }
