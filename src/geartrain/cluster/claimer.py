"""Claims: shared jobs taken for this member's idle workers, and given back.

When this member has idle workers, the claimer claims up to that many jobs of
their functions in one round trip and gives them to the core
(:meth:`~geartrain.server.core.JobServer.adopt`), which wakes the workers with
NOOP as usual.  What triggers a claim: a worker going to sleep, a job finishing
here, a wake-up hint from any member's commit (PostgreSQL's NOTIFY or Redis
pub/sub, one per batch, not per job), and a poll every :data:`POLL` seconds
behind them, which also promotes epoch jobs and retries as they fall due.

It holds ``depth`` jobs per worker of a function, so that a worker finishing a
job finds its next one without waiting for the store; jobs held beyond what the
workers want (workers left, or the backlog shrank) go back to the cluster at
the next poll.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..retry import stored as stored_retry
from ..store.records import decode_outcomes
from . import cluster_handle
from .backend import MAX_BATCH
from .timing import CallLater

if TYPE_CHECKING:
    from ..server.core import JobServer
    from .backend import ClusterBackend
    from .claims import Claims
    from .lease import Lease
    from .writes import Writes

__all__ = ["MAX_DEPTH", "POLL", "Claimer"]

log = logging.getLogger("geartrain.cluster")

POLL = 1.0
"""Seconds between claims while workers are idle, in case a wake-up was missed."""

MAX_DEPTH = 32
"""Most jobs held here per worker of a function.  The depth starts at one and
doubles while workers go to sleep waiting for claims that come back full (many
short jobs); it falls back to one once a claim finds fewer jobs than asked."""


class Claimer:
    """Claims jobs for this member's workers while its lease is valid."""

    def __init__(
        self,
        core: JobServer,
        backend: ClusterBackend,
        lease: Lease,
        held: Claims,
        writes: Writes,
        errors: tuple[type[Exception], ...],
        call_later: CallLater,
    ) -> None:
        self.core = core
        self.backend = backend
        self.lease = lease
        self.held = held
        self.writes = writes
        self.errors = errors
        self.call_later = call_later
        self._task: asyncio.Task[None] | None = None
        self._poller: Any = None
        self._want = False
        self._starved = False  # a worker went to sleep since the last claim
        self._depth: dict[bytes, int] = {}  # jobs held per worker, by function
        # A claim failed: the store may have taken it though its answer was lost (or
        # an abandoned call lands after its deadline), leaving jobs claimed by this
        # member that it does not hold, which nobody would rescue while it lives.
        # Until a lease's time after the failure the store is checked once a poll.
        self._unsure_until = 0.0
        self._checked_at = 0.0

    def kick(self) -> None:
        """Claim for idle workers soon (coalesces any number of calls)."""
        self._want = True
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._claim())

    def hungry(self) -> None:
        """A worker went to sleep: claim, and hold more of a backlog if the claim
        comes back full."""
        self._starved = True
        self.kick()

    def poll(self) -> None:
        """Give back what the workers no longer want, claim, and poll again later."""
        self._give_back()
        self.kick()
        self._poller = self.call_later(POLL, self.poll)

    def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        if self._task is not None:
            self._task.cancel()

    def _wants(self) -> list[tuple[bytes, int]]:
        """(function, how many): ``depth`` jobs queued here per worker of the function
        (none of a paused function)."""
        wants = []
        for f in self.core.functions.values():
            if f.paused:
                continue
            depth = self._depth.get(f.name, 1)
            want = len(f.workers) * depth - f.queued[0] - f.queued[1] - f.queued[2]
            if want > 0:
                wants.append((f.name, min(want, MAX_BATCH)))
        return wants

    def _give_back(self) -> None:
        """Queue again in the cluster the jobs held here beyond what this member's
        workers want (all those of a paused function: they wait in the cluster)."""
        core = self.core
        room = {
            f.name: 0 if f.paused else len(f.workers) * self._depth.get(f.name, 1)
            for f in core.functions.values()
        }
        given = []
        for job_id, claim, job in self.held.items():
            f = job.function
            queued = f.queued[0] + f.queued[1] + f.queued[2]
            if job.worker is None and queued > room.get(f.name, 0) and core.disown(job.handle):
                self.held.let_go(job_id)
                given.append((job_id, claim, job.retries))
        if given:
            self.writes.release(given)

    async def _claim(self) -> None:
        try:
            while self._want:
                self._want = False
                if self._unsure_until and self.lease.clock() - self._checked_at >= POLL:
                    await self._reconcile()
                wants = self._wants()
                if not wants or not self.lease.valid:
                    return
                try:
                    rows = await self.backend.claim(self.lease.server, wants)
                except self.errors as error:
                    log.warning("Cluster claim failed: %s", error)
                    self._unsure_until = self.lease.clock() + self.lease.ttl
                    return
                if not self.lease.valid:
                    # The lease lapsed during the claim: these go straight back.
                    if rows:
                        self.writes.release([(r.id, r.claim, r.retries) for r in rows])
                    return
                got: dict[bytes, int] = {}
                for r in rows:
                    job = self.core.adopt(
                        cluster_handle(r.prefix, r.id),
                        r.function,
                        r.unique,
                        r.data,
                        r.priority,
                        r.reducer,
                        r.id,
                        r.retries,
                    )
                    job.failures, job.outcomes = r.failures, decode_outcomes(r.outcomes)
                    job.retry, job.keep_result = stored_retry(r.retry), r.keep
                    self.held.hold(r.id, r.claim, job)
                    got[r.function] = got.get(r.function, 0) + 1
                self._deepen(wants, got)
        finally:
            self._task = None

    async def _reconcile(self) -> None:
        """After a failed claim: give back the jobs the store says this member claimed
        but it neither holds nor owes a write for."""
        self._checked_at = now = self.lease.clock()
        owed = self.writes.owed()
        try:
            claimed = await self.backend.claimed(self.lease.server)
        except self.errors as error:
            log.warning("Cluster claim check failed: %s", error)
            return
        owed |= self.writes.owed()  # what got owed meanwhile
        held = {job_id for job_id, _claim, _job in self.held.items()}
        lost = [c for c in claimed if c[0] not in held and c[0] not in owed]
        if lost:
            log.warning("Giving back %d job(s) of a claim whose answer was lost", len(lost))
            self.writes.release(lost)
        if now >= self._unsure_until:
            self._unsure_until = 0.0

    def _deepen(self, wants: list[tuple[bytes, int]], got: dict[bytes, int]) -> None:
        """After a claim: claim again where it came back full, and hold more of a
        backlog where workers waited for it; back to one where it did not fill."""
        starved, self._starved = self._starved, False
        for name, n in wants:
            if got.get(name, 0) < n:
                self._depth.pop(name, None)  # the backlog is gone
                continue
            self._want = True  # it may have more waiting
            if starved:
                self._depth[name] = min(MAX_DEPTH, self._depth.get(name, 1) * 2)
