"""Busy polling: the event loop keeps looking for input for a moment after work.

Most Gearman peers send one request and wait for its answer (`doBackground`, a
worker's GRAB_JOB after WORK_COMPLETE), so the next packet usually arrives a few
tens of microseconds after the server answered.  If the server's thread has
gone to sleep by then, waking it costs more than the work it does: on a
virtual machine an idle CPU halts, and waking it takes a trip through the
hypervisor.  Measured on a 2-CPU VM (docs/performance.md), one PHP worker on
the other CPU from the server drained 8,000 jobs/s while the same pair on one
CPU drained 46,000; the difference is wake-ups.

So after a loop turn that did work, the loop polls its sockets without
blocking for up to a *window* before it sleeps, the way Linux's
``net.core.busy_poll`` and KVM's halt polling do.  Each empty poll yields the
CPU to whatever else is runnable on it, so a worker or client sharing the CPU
is not held up.  The window adapts as KVM's does: it grows (doubling, up to
the limit) when work came after the loop had stopped polling but within the
limit, and halves when work came later than the limit, where polling would
not have caught it.  A busy server with chatty peers polls; an idle server or
one that gets a request every millisecond sleeps as before.  ``--busy-poll 0``
turns it off.
"""

from __future__ import annotations

import asyncio
import os
from time import monotonic

__all__ = ["DEFAULT_BUSY_POLL_US", "BusyPoll", "next_window"]

DEFAULT_BUSY_POLL_US = 100
"""The longest window, in microseconds: longer than the round trip of a peer that
answers at once on this machine class, far shorter than a scheduler tick."""

_yield_cpu = getattr(os, "sched_yield", lambda: None)


def next_window(window: float, gap: float, limit: float) -> float:
    """The polling window after work came ``gap`` seconds after the last work.

    Work caught by polling (``gap <= window``) keeps the window.  Work that came
    after the loop had gone to sleep doubles it, up to ``limit``, if a longer
    window would have caught it; otherwise it halves, and falls to 0 below an
    eighth of the limit (so a grown window starts there)."""
    if gap <= window:
        return window
    smallest = limit / 8
    if gap <= limit:
        return min(limit, max(window * 2, smallest))
    return window / 2 if window >= 2 * smallest else 0.0


class BusyPoll:
    """Keeps a loop polling for up to a window after each turn that did work."""

    def __init__(self, limit_us: int) -> None:
        self.limit = limit_us / 1e6
        self.window = self.limit
        self._last_work = 0.0
        self._polling = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def polling(self) -> bool:
        return self._polling

    def worked(self) -> None:
        """Called at the end of a loop turn that did work."""
        if not self.limit:
            return
        now = monotonic()
        self.window = next_window(self.window, now - self._last_work, self.limit)
        self._last_work = now
        if self.window and not self._polling:
            self._polling = True
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self._poll)

    def _poll(self) -> None:
        # A callback that is ready keeps the loop's next poll of its sockets from
        # blocking; rescheduling ourselves keeps the loop polling.
        if monotonic() < self._last_work + self.window:
            _yield_cpu()
            assert self._loop is not None
            self._loop.call_soon(self._poll)
        else:
            self._polling = False
