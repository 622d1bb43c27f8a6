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

from .model import QUEUED, SCHEDULED, Function, Job, Peer

__all__ = ["Queues"]

CallLater = Callable[[float, Callable[[], None]], Any]


class Queues:
    """Queued and scheduled jobs, and the functions that have queued ones."""

    __slots__ = (
        "ready",
        "ready_at",
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
        # The same by priority: a grab skips a priority nothing waits at.
        self.ready_at: tuple[dict[Function, None], ...] = ({}, {}, {})
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
        if f.queued[job.priority] == 1:
            self.ready_at[job.priority][f] = None
            self._arrived(f, job.priority)
        if f.sleepers and not f.paused:
            self.wake(f)

    def withdraw(self, job: Job) -> None:
        """The job leaves while queued or scheduled (its queue entry is skipped
        when reached, so removal is O(1))."""
        f = job.function
        if job.state is QUEUED:
            self._count_out(f, job.priority)
        elif job.state is SCHEDULED:
            f.scheduled -= 1

    def _count_out(self, f: Function, priority: int) -> None:
        """One job of ``f`` at ``priority`` is no longer queued."""
        f.queued[priority] -= 1
        if not f.queued[priority]:
            del self.ready_at[priority][f]
            if not f.has_queued():
                del self.ready[f]

    # -- which function a grab serves -------------------------------------------
    #
    # Each worker keeps, per priority, a heap of its registrations by rank holding
    # (at least) every registered function with jobs at that priority; a function
    # lists in ``absent`` the workers whose heap lacks it, and joins those heaps when
    # a job arrives at that priority.  Entries whose function has no job there, or
    # whose registration changed, are dropped when they reach the top.  So a grab
    # costs a heap step, not a walk over 10,000 registrations or functions with work.

    def register(self, peer: Peer, f: Function, timeout: int) -> None:
        """CAN_DO: ``f`` joins the worker's registrations as its most recent one."""
        rank = self.next_rank()
        peer.abilities[f] = (timeout, rank)
        self._listed(peer, f, rank)

    def unregister(self, peer: Peer, f: Function) -> None:
        """The worker no longer does ``f`` (its heap entries are dropped when reached)."""
        if f.absent is not None:
            for absent in f.absent:
                absent.pop(peer, None)

    def _listed(self, peer: Peer, f: Function, rank: int) -> None:
        absent = f.absent
        if absent is None:
            return  # it never had a job: no heap holds it, and its first job lists it
        heaps = peer.heaps or peer.make_heaps()
        for priority in (0, 1, 2):
            if f.queued[priority]:
                self._seq += 1
                heapq.heappush(heaps[priority], (-rank, self._seq, f))
            else:
                absent[priority][peer] = None

    def _arrived(self, f: Function, priority: int) -> None:
        """The first job of ``f`` at ``priority``: into the heaps that lack it."""
        absent = f.absent
        if absent is None:
            # Its first job ever: every worker lacks it.  Made only now, so that a
            # worker registering 100,000 functions that never get a job costs no more.
            absent = f.make_absent()
            for peer in f.workers:
                for lacking in absent:
                    lacking[peer] = None
        lacking = absent[priority]
        for peer in lacking:
            heaps = peer.heaps or peer.make_heaps()
            self._seq += 1
            heapq.heappush(heaps[priority], (-peer.abilities[f][1], self._seq, f))
        lacking.clear()

    def resumed(self, f: Function) -> None:
        """A paused function's queued jobs are available again."""
        for priority in (0, 1, 2):
            if f.queued[priority]:
                self._arrived(f, priority)

    def take(self, peer: Peer) -> Job | None:
        """The job for a grabbing worker, taken off its queue."""
        heaps = peer.heaps
        if not self.ready or heaps is None:
            return None
        abilities = peer.abilities
        for priority in (0, 1, 2):
            if not self.ready_at[priority]:
                continue
            heap = heaps[priority]
            while heap:
                negative_rank, _seq, f = heap[0]
                entry = abilities.get(f)
                if entry is None or entry[1] != -negative_rank:
                    heapq.heappop(heap)  # left or registered again since
                elif f.queued[priority] and not f.paused:
                    return self._pop(peer, f, priority)
                else:  # no job there, or paused: back in when one comes (or it resumes)
                    heapq.heappop(heap)
                    absent = f.absent
                    assert absent is not None
                    absent[priority][peer] = None
        return None

    def _pop(self, peer: Peer, f: Function, priority: int) -> Job:
        queues = f.queues
        assert queues is not None
        queue = queues[priority]
        job = queue.popleft()
        while job.state is not QUEUED:
            job = queue.popleft()  # skip entries of cancelled jobs
        self._count_out(f, priority)
        if self.round_robin:
            rank = -self.next_rank()
            peer.abilities[f] = (peer.abilities[f][0], rank)
            self._listed(peer, f, rank)
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
