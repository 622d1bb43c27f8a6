"""Jobs waiting for a worker: three FIFOs per function, and epoch jobs waiting for
their time.

Which job a grabbing worker gets is decided here (:meth:`Queues.take`):
highest priority first across all the worker's functions (gearmand 2.0; 1.1
looked at one function at a time), FIFO within a priority, the most recently
registered function first (rotated with ``--round-robin``); a paused function's
jobs wait (see :mod:`.pauses`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Any

from .model import Function, Job, JobState, Peer

__all__ = ["Queues"]

CallLater = Callable[[float, Callable[[], None]], Any]

QUEUED, SCHEDULED = JobState.QUEUED, JobState.SCHEDULED


class Queues:
    """Queued and scheduled jobs, and the functions that have queued ones."""

    __slots__ = (
        "ready",
        "clock",
        "call_later",
        "wake",
        "round_robin",
        "_rank",
        "_heap",
        "_timer",
        "_seq",
    )

    def __init__(
        self,
        clock: Callable[[], float],
        call_later: CallLater | None,
        wake: Callable[[Function], None],
        round_robin: bool = False,
    ) -> None:
        # Functions with queued jobs: a grabbing worker with many functions looks
        # only at these, so its GRAB_JOB costs what is queued, not what it registered.
        self.ready: dict[Function, None] = {}
        self.clock = clock
        self.call_later = call_later
        self.wake = wake  # called when a job is queued for a function with sleeping workers
        self.round_robin = round_robin
        self._rank = 0  # registration ranks, see Peer.abilities
        self._heap: list[tuple[float, int, Job]] = []
        self._timer: Any = None
        self._seq = 0

    def next_rank(self) -> int:
        """A rank higher than every one given before (registrations are tried
        highest rank first)."""
        self._rank += 1
        return self._rank

    def put(self, job: Job) -> None:
        """Make the job available to workers, or schedule it if its time is ahead."""
        if job.when and job.when > self.clock():
            job.state = SCHEDULED
            job.function.scheduled += 1
            self._schedule(job)
            return
        job.state = QUEUED
        f = job.function
        queues = f.queues or f.make_queues()
        queues[job.priority].append(job)
        f.queued[job.priority] += 1
        self.ready[f] = None
        if f.sleepers and not f.paused:
            self.wake(f)

    def withdraw(self, job: Job) -> None:
        """The job leaves while queued or scheduled (its queue entry is skipped
        when reached, so removal is O(1))."""
        f = job.function
        if job.state is QUEUED:
            f.queued[job.priority] -= 1
            if not f.has_queued():
                del self.ready[f]
        elif job.state is SCHEDULED:
            f.scheduled -= 1

    def take(self, peer: Peer) -> Job | None:
        """The job for a grabbing worker, taken off its queue."""
        abilities = peer.abilities
        ready = self.ready
        if not ready:
            return None
        # Look through the smaller of the two: the worker's functions, or those with work.
        pool = abilities.keys() if len(abilities) <= len(ready) else ready.keys()
        for priority in (0, 1, 2):
            best: Function | None = None
            best_rank = 0
            for f in pool:
                if f.queued[priority] and not f.paused:
                    entry = abilities.get(f)
                    if entry is not None and (best is None or entry[1] > best_rank):
                        best, best_rank = f, entry[1]
            if best is not None:
                return self._pop(peer, best, priority)
        return None

    def _pop(self, peer: Peer, f: Function, priority: int) -> Job:
        queues = f.queues
        assert queues is not None
        queue = queues[priority]
        job = queue.popleft()
        while job.state is not QUEUED:
            job = queue.popleft()  # skip entries of cancelled jobs
        f.queued[priority] -= 1
        if not f.has_queued():
            del self.ready[f]
        if self.round_robin:
            peer.abilities[f] = (peer.abilities[f][0], -self.next_rank())
        return job

    def compact(self, f: Function) -> None:
        """Drop the entries of jobs that left ``f``'s queues (cancelled, abandoned)
        now rather than when they reach the head, so that a queue holds exactly its
        queued jobs and can be read by position (the console's pages)."""
        if f.queues is None:
            return
        for priority, queue in enumerate(f.queues):
            if len(queue) != f.queued[priority]:
                live = [job for job in queue if job.state is QUEUED]
                queue.clear()
                queue.extend(live)

    def has_work(self, peer: Peer) -> bool:
        """Whether a job is queued for one of the worker's functions."""
        abilities = peer.abilities
        if len(abilities) <= len(self.ready):
            return any(f.available() for f in abilities)
        return any(f in abilities and not f.paused for f in self.ready)

    # -- epoch jobs ---------------------------------------------------------------

    def _schedule(self, job: Job) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (job.when, self._seq, job))
        if self._heap[0][2] is job:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._heap and self.call_later is not None:
            delay = max(0.0, self._heap[0][0] - self.clock())
            self._timer = self.call_later(delay, self._due)

    def _due(self) -> None:
        """Queue every epoch job whose time has come (gearmand 2.0 wakes workers here)."""
        self._timer = None
        now = self.clock()
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _seq, job = heapq.heappop(heap)
            if job.state is SCHEDULED and job.when == when:  # else a stale entry
                job.function.scheduled -= 1
                job.when = 0.0
                self.put(job)
        self._arm()

    def scheduled(self) -> list[Job]:
        """Epoch jobs still waiting, soonest first."""
        return [
            job
            for when, _seq, job in sorted(self._heap)
            if job.state is SCHEDULED and job.when == when
        ]

    def waiting(self) -> Iterator[Job]:
        """Epoch jobs still waiting, in no order (cheaper than :meth:`scheduled`)."""
        return (
            job for when, _seq, job in self._heap if job.state is SCHEDULED and job.when == when
        )

    def now(self, job: Job) -> None:
        """A scheduled job (a waiting retry) is queued at once; its entry in the
        schedule is skipped when reached."""
        job.function.scheduled -= 1
        job.when = 0.0
        self.put(job)
