"""A page of queued jobs at any offset, oldest (or newest) first across queues.

Each priority queue of a function is a deque in submission order, so the
queues merged by creation time give the age order.  A page far from either
end does not walk the merge up to its offset: the creation time at that rank
is found by bisecting the time range, counting each queue's entries below it
with a binary search (a deque is indexable), and the merge starts there.  That
needs queues without the entries of cancelled jobs (which stay until they reach
a queue's head): the lists clear them first (``Queues.compact``); a queue that
still has some is walked.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice

from ..server.model import Job, JobState

__all__ = ["WALK", "merged", "queued_page"]

WALK = 2000
"""Offsets up to this are walked: cheaper than bisecting."""

QUEUED = JobState.QUEUED


def _created(job: Job) -> float:
    return job.created_at


def _live(queue: Iterable[Job]) -> Iterator[Job]:
    return (j for j in queue if j.state is QUEUED)


def merged(queues: list[deque[Job]], newest: bool = False) -> Iterator[Job]:
    """The live jobs of these queues, oldest first (or newest first: the same
    order reversed, jobs created at one instant included)."""
    sources = [_live(reversed(q)) for q in reversed(queues)] if newest else list(map(_live, queues))
    if len(sources) == 1:
        return sources[0]
    return heapq.merge(*sources, key=_created, reverse=newest)


def queued_page(
    queues: list[deque[Job]], live: int, offset: int, limit: int, newest: bool
) -> list[Job]:
    """Jobs ``offset`` to ``offset + limit`` of the queues merged by age; ``live``
    is how many jobs they hold (without the stale entries)."""
    if offset >= live:
        return []
    clean = sum(map(len, queues)) == live
    if newest and clean and offset > WALK:
        # The newest-first page is an oldest-first page counted from the other end.
        start = max(0, live - offset - limit)
        page = _oldest_page(queues, start, live - offset - start)
        page.reverse()
        return page
    if not clean or offset <= WALK:
        return list(islice(merged(queues, newest), offset, offset + limit))
    return _oldest_page(queues, offset, limit)


def _window(queue: deque[Job], start: int, count: int) -> list[Job]:
    """Entries ``start`` to ``start + count`` of a queue, by index: walking a
    deque's blocks, not its jobs (skipping a million jobs touches each, a cache
    miss apiece)."""
    return [queue[i] for i in range(start, min(len(queue), start + count))]


def _oldest_page(queues: list[deque[Job]], offset: int, limit: int) -> list[Job]:
    if len(queues) == 1:
        return _window(queues[0], offset, limit)
    if offset <= WALK:
        return list(islice(merged(queues), offset, offset + limit))
    # The latest time with at most `offset` jobs created before it.
    lo = min(q[0].created_at for q in queues)
    hi = max(q[-1].created_at for q in queues) + 1.0
    for _ in range(64):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if sum(bisect_left(q, mid, key=_created) for q in queues) <= offset:
            lo = mid
        else:
            hi = mid
    starts = [bisect_left(q, lo, key=_created) for q in queues]
    skip = offset - sum(starts)  # jobs created at the same instant as the page's first
    tails = [_window(q, start, skip + limit) for q, start in zip(queues, starts, strict=True)]
    return list(islice(heapq.merge(*tails, key=_created), skip, skip + limit))
