"""A page of queued jobs at any offset: the same jobs as walking the queues merged by age."""

from __future__ import annotations

import random
from collections import deque

import pytest

from geartrain.console.queued import WALK, merged, queued_page
from geartrain.server.model import Function, Job, JobState


def queues_of(sizes: list[int], seed: int) -> list[deque[Job]]:
    """Queues in submission order; several jobs share an instant, as on a busy server."""
    rand = random.Random(seed)
    f = Function(b"f")
    jobs = [Job(b"H:%d" % i, f, b"", b"", 1, True) for i in range(sum(sizes))]
    now = 1_800_000_000.0
    for job in jobs:
        now += rand.choice((0.0, 0.0, 1e-6, 0.25))
        job.created_at = now
    queues: list[deque[Job]] = [deque() for _ in sizes]
    room = list(sizes)
    for job in jobs:
        i = rand.choice([i for i, r in enumerate(room) if r])
        room[i] -= 1
        queues[i].append(job)
    return queues


@pytest.mark.parametrize("sizes", [[7000], [3000, 4000, 2500], [1, 9000, 0, 17]])
@pytest.mark.parametrize("newest", [False, True])
def test_pages_at_every_depth_match_the_merge(sizes: list[int], newest: bool) -> None:
    queues = [q for q in queues_of(sizes, seed=len(sizes)) if q]
    live = sum(sizes)
    walked = list(merged(queues, newest))
    assert len(walked) == live
    for offset in (0, 1, WALK, WALK + 1, live // 2, live - 50, live - 1, live):
        page = queued_page(queues, live, offset, 50, newest)
        assert [j.handle for j in page] == [j.handle for j in walked[offset : offset + 50]]


def test_cancelled_entries_are_skipped_and_not_counted() -> None:
    queues = queues_of([3000, 3000], seed=9)
    cancelled = {j.handle for q in queues for j in list(q)[::7]}
    for q in queues:
        for j in q:
            if j.handle in cancelled:
                j.state = JobState.DONE
    live = 6000 - len(cancelled)
    walked = [j.handle for j in merged(queues)]
    assert len(walked) == live and not cancelled & set(walked)
    page = queued_page(queues, live, 4000, 50, False)
    assert [j.handle for j in page] == walked[4000:4050]
