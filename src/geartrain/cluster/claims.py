"""The shared jobs this server holds, and when it may still hand them out.

A claim is only as good as the lease it was made under: once the lease may have
lapsed, another server may take the claimed jobs over (and run them).  So the
rule is checked where it matters, synchronously and on the clock, each time the
core is about to hand a job to a worker (:meth:`Claims.check`), not by a timer:
a loop that stalled (a paused process, a frozen VM, a long collection) runs the
packets that waited for it before its overdue timers.  A job already handed out
before the lapse runs on; its acknowledgement is fenced by the claim number in
the store, so a job taken over meanwhile keeps the other server's result.

No I/O here: the writes (:mod:`.writes`) carry what these decisions produce.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from .lease import Lease

if TYPE_CHECKING:
    from ..server.core import JobServer
    from ..server.model import Job

__all__ = ["Claims"]

log = logging.getLogger("geartrain.cluster")


class Claims:
    """Jobs claimed by this server and not yet acknowledged: id -> (claim, job)."""

    def __init__(
        self,
        lease: Lease,
        core: JobServer,
        give_back: Callable[[list[tuple[int, int, int]]], None],
    ) -> None:
        self.lease = lease
        self.core = core
        # Writes (id, claim, retries) back to the queue, fenced by the claim: a
        # lapse only this member saw (its renewal came late) leaves the jobs
        # claimed by a live member, which nobody else would ever rescue.
        self.give_back = give_back
        self._held: dict[int, tuple[int, Job]] = {}
        self._progress: dict[int, tuple[int, int]] = {}  # last written per held job

    def __len__(self) -> int:
        return len(self._held)

    def items(self) -> Iterator[tuple[int, int, Job]]:
        """(id, claim, job) of every held job."""
        for job_id, (claim, job) in list(self._held.items()):
            yield job_id, claim, job

    def hold(self, job_id: int, claim: int, job: Job) -> None:
        self._held[job_id] = (claim, job)

    def let_go(self, job_id: int) -> int | None:
        """Stop holding a job (it finished, failed or runs again elsewhere): its
        claim number, or None if it was not held."""
        held = self._held.pop(job_id, None)
        self._progress.pop(job_id, None)
        return None if held is None else held[0]

    def check(self) -> bool:
        """Whether held jobs may be handed out now; if the lease may have lapsed,
        every held job no worker has started is forgotten first (it is the
        cluster's again), so the core has none of them left to hand out."""
        if self.lease.valid:
            return True
        dropped = self.drop_unstarted() if self._held else 0
        if dropped:
            log.warning(
                "Cluster lease may have lapsed: %d claimed job(s) not started here"
                " are given back to the cluster",
                dropped,
            )
        return False

    def drop_unstarted(self) -> int:
        """Give the cluster back the held jobs no worker has started (queued again
        unless claimed anew since, which the claim number fences); how many."""
        dropped = []
        for job_id, claim, job in self.items():
            if self.core.disown(job.handle):
                self.let_go(job_id)
                dropped.append((job_id, claim, job.retries))
        if dropped:
            self.give_back(dropped)
        return len(dropped)

    def progress_changes(self) -> list[tuple[int, int, int, int]]:
        """(id, claim, numerator, denominator) of running jobs whose progress
        changed since the last call, so that GET_STATUS elsewhere sees it."""
        changed = []
        for job_id, (claim, job) in self._held.items():
            now = (job.numerator, job.denominator)
            if now != self._progress.get(job_id, (0, 0)):
                changed.append((job_id, claim, now[0], now[1]))
                self._progress[job_id] = now
        return changed
