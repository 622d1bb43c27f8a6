"""Per-function rates by the minute, on a manual clock."""

from __future__ import annotations

import pytest

from geartrain.console.rates import MINUTES, Rates, percentiles
from geartrain.server.model import Function, Job


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # a minute's start

    def __call__(self) -> float:
        return self.now


def ran(function: Function, clock: Clock, wait: float, run: float) -> Job:
    job = Job(b"H:x:1", function, b"", b"", 1, True)
    job.created_at = clock.now - wait - run
    job.started_at = clock.now - run
    return job


def test_buckets_per_minute_with_percentiles() -> None:
    clock = Clock()
    rates = Rates(clock)
    f = Function(b"resize")
    for i in range(100):
        rates.event(ran(f, clock, wait=0.01, run=0.1 if i < 90 else 2.0), "completed")
    rates.event(ran(f, clock, wait=0.01, run=0.1), "exception")
    rates.event(ran(f, clock, wait=0.01, run=0.1), "retried")
    rates.event(ran(f, clock, wait=0.01, run=0.1), "submitted")  # not a rate
    clock.now += 60
    rates.event(ran(f, clock, wait=0.01, run=0.1), "completed")

    hour = rates.hour(b"resize")
    assert len(hour) == MINUTES and hour[-1]["at"] == clock.now
    assert [m["at"] for m in hour] == [clock.now - 60 * (MINUTES - 1 - i) for i in range(MINUTES)]
    before, now = hour[-2], hour[-1]
    assert (before["processed"], before["failed"], before["retried"]) == (100, 1, 1)
    assert now["processed"] == 1 and hour[0]["processed"] == 0 and hour[0]["run"]["p50"] is None
    # Buckets grow by a quarter: each percentile is within 25% above the true value.
    assert 0.1 <= before["run"]["p50"] <= 0.125
    assert 0.1 <= before["run"]["p90"] <= 0.125  # the 90th of 101 is still 0.1
    assert 2.0 <= before["run"]["p99"] <= 2.5
    assert 0.01 <= before["wait"]["p99"] <= 0.0125
    assert rates.recent(b"resize") == {"processed": 20.2, "failed": 0.2, "retried": 0.2}
    assert rates.recent(b"other") == {"processed": 0.0, "failed": 0.0, "retried": 0.0}


def test_old_minutes_and_idle_functions_are_forgotten() -> None:
    clock = Clock()
    rates = Rates(clock, max_functions=2)
    for name in (b"a", b"b"):
        rates.event(ran(Function(name), clock, 0, 0), "completed")
    clock.now += 60 * MINUTES
    assert sum(m["processed"] for m in rates.hour(b"a")) == 0  # an hour ago: gone
    rates.event(ran(Function(b"a"), clock, 0, 0), "completed")
    rates.event(ran(Function(b"c"), clock, 0, 0), "completed")  # b was idle longest
    assert set(rates.functions) == {b"a", b"c"}


def test_percentiles_of_nothing() -> None:
    assert percentiles({}) == {"p50": None, "p90": None, "p99": None}
    assert percentiles({0: 1}) == pytest.approx({"p50": 0.001, "p90": 0.001, "p99": 0.001})
