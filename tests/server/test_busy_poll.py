"""Busy polling: the window's rule, and a real event loop that polls, then sleeps."""

from __future__ import annotations

import asyncio
import time

from geartrain.server.busy_poll import BusyPoll, next_window

LIMIT = 100e-6


def windows(gaps: list[float], window: float = 0.0) -> list[float]:
    out = []
    for gap in gaps:
        window = next_window(window, gap, LIMIT)
        out.append(round(window * 1e6, 1))
    return out


def test_work_coming_soon_after_the_loop_slept_grows_the_window_to_the_limit() -> None:
    assert windows([60e-6] * 6) == [12.5, 25.0, 50.0, 100.0, 100.0, 100.0]


def test_work_coming_later_than_the_limit_shrinks_the_window_to_nothing() -> None:
    assert windows([1e-3] * 6, window=LIMIT) == [50.0, 25.0, 12.5, 0.0, 0.0, 0.0]


def test_work_that_polling_caught_keeps_the_window() -> None:
    assert windows([10e-6, 40e-6, 49e-6], window=50e-6) == [50.0, 50.0, 50.0]


async def cpu_while_waiting(seconds: float) -> float:
    start = time.process_time()
    await asyncio.sleep(seconds)
    return time.process_time() - start


async def test_the_loop_polls_for_the_window_after_work_then_sleeps() -> None:
    poll = BusyPoll(limit_us=800_000)
    poll.worked()  # the first work came "long" after none: the window halves, to 400 ms
    assert poll.window == 0.4
    # Polling: the loop did not sleep.  It yields the CPU on each empty poll, so
    # on a busy machine it gets a share of it: the window is long enough that
    # even a small share shows.
    assert await cpu_while_waiting(0.3) > 0.01
    await asyncio.sleep(0.2)  # the window is over
    assert await cpu_while_waiting(0.2) < 0.01  # asleep


async def test_no_polling_when_turned_off() -> None:
    poll = BusyPoll(limit_us=0)
    poll.worked()
    assert await cpu_while_waiting(0.1) < 0.02
