"""This member's changes to the shared store, written in batches.

Submissions, kept results, acknowledgements, jobs given back, retries and moves
to the failed set wait in lists; one write at a time carries what the lists
hold, so under load each statement (or script) carries many jobs.  A write puts
the kept results before the jobs' ends (acknowledgements, moves to the failed
set), which the core notes in the same loop turn: a job leaves the store only
once its result is there, so a member that looks finds one or the other, never
neither.  Everything asked for during a loop turn joins that turn's write;
everything asked for while a write is in flight joins the next.  Every write but
a submission is fenced in the store by the job's claim number: a job claimed
again since, by any member, is not touched.

If the store fails, the submissions of that write are refused (their clients
get ``ERROR QUEUE_ERROR``), everything else is kept and written again
:data:`RETRY_DELAY` later, and the outage is logged once; the next write that
succeeds ends it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from ..retry import storable
from ..server.changes import KeyedChanges
from ..store.records import KeptResult
from . import Failure, Retry, Submission, cluster_handle
from .backend import MAX_BATCH
from .timing import CallLater, sleep

if TYPE_CHECKING:
    from ..server.core import JobServer
    from ..server.model import Job
    from .backend import ClusterBackend

__all__ = ["RETRY_DELAY", "Writes"]

log = logging.getLogger("geartrain.cluster")

RETRY_DELAY = 1.0
"""Seconds between attempts to write while the store is down."""


class Writes:
    """The writes this member owes the shared store, batched; ``prefix`` is the
    handle prefix its submissions carry."""

    def __init__(
        self,
        core: JobServer,
        backend: ClusterBackend,
        prefix: bytes,
        errors: tuple[type[Exception], ...],
        call_later: CallLater,
    ) -> None:
        self.core = core
        self.backend = backend
        self.prefix = prefix
        self.errors = errors
        self.call_later = call_later
        self._adds: list[Job] = []
        self._kept: KeyedChanges[KeptResult] = KeyedChanges(backend.write_results)
        self._acks: list[tuple[int, int]] = []
        self._releases: list[tuple[int, int, int]] = []
        self._retries: list[Retry] = []
        self._fails: list[Failure] = []
        self._writer: asyncio.Task[None] | None = None
        self._flight: set[int] = set()  # ids of the claimed jobs in the batch being written
        self.outage = False

    # -- what is owed -------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """A background job for the cluster; the core hears of it (``shared`` or
        ``store_failed``) once written."""
        self._adds.append(job)
        self._kick()

    def keep_results(self, added: list[KeptResult], removed: list[bytes]) -> None:
        """This member's kept results changed (``Results.persist``)."""
        self._kept.note(added, removed)
        self._kick()

    def ack(self, job_id: int, claim: int) -> None:
        """A held job is over: delete it."""
        self._acks.append((job_id, claim))
        self._kick()

    def release(self, jobs: list[tuple[int, int, int]]) -> None:
        """(id, claim, retries) of held jobs given back: queued again at once."""
        self._releases.extend(jobs)
        self._kick()

    def retry(self, retry: Retry) -> None:
        """A held job runs again, on any member, after ``retry.delay``."""
        self._retries.append(retry)
        self._kick()

    def fail(self, failure: Failure) -> None:
        """A held job failed for good: to the failed set."""
        self._fails.append(failure)
        self._kick()

    def owed(self) -> set[int]:
        """The ids of claimed jobs with a write owed or under way (acknowledged, given
        back, retried or failed here, and not yet in the store)."""
        owed = set(self._flight)
        owed.update(job_id for job_id, _claim in self._acks)
        owed.update(job_id for job_id, _claim, _retries in self._releases)
        owed.update(r.id for r in self._retries)
        owed.update(f.id for f in self._fails)
        return owed

    def _unwritten(self) -> bool:
        return bool(
            self._adds or self._kept or self._acks or self._releases or self._retries or self._fails
        )

    # -- writing ------------------------------------------------------------------

    def _kick(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def flush(self) -> None:
        """Write everything owed (at a clean stop; the caller bounds the wait)."""
        while self._writer is not None or self._unwritten():
            if self._writer is None:
                self._kick()
            assert self._writer is not None
            await asyncio.shield(self._writer)
            if self.outage:
                return

    async def _write(self) -> None:
        try:
            await asyncio.sleep(0)  # the rest of this loop turn joins the batch
            while self._unwritten():
                if not await self._write_once():
                    await sleep(self.call_later, RETRY_DELAY)
        finally:
            self._writer = None

    async def _write_once(self) -> bool:
        adds, self._adds = self._adds[:MAX_BATCH], self._adds[MAX_BATCH:]
        acks, self._acks = self._acks[:MAX_BATCH], self._acks[MAX_BATCH:]
        releases, self._releases = self._releases[:MAX_BATCH], self._releases[MAX_BATCH:]
        retries, self._retries = self._retries[:MAX_BATCH], self._retries[MAX_BATCH:]
        fails, self._fails = self._fails[:MAX_BATCH], self._fails[MAX_BATCH:]
        self._flight = {a[0] for a in acks} | {r[0] for r in releases}
        self._flight |= {r.id for r in retries} | {f.id for f in fails}
        try:
            if adds:
                await self._submit(adds)
                adds = []
            if self._kept:
                await self._kept.flush()  # gives its records back itself if it fails
            if acks:
                await self._ack(acks)
                acks = []
            if releases:
                await self.backend.release(releases)
                releases = []
            if retries:
                await self.backend.retry(retries)
                retries = []
            if fails:
                await self.backend.fail(fails)
        except self.errors as error:
            self._flight = set()
            self._failed(error, adds)
            self._acks[:0] = acks
            self._releases[:0] = releases
            self._retries[:0] = retries
            self._fails[:0] = fails
            return False
        self._flight = set()
        if self.outage:
            self.outage = False
            log.warning("Cluster store is back")
        return True

    async def _submit(self, adds: list[Job]) -> None:
        submissions = [
            Submission(
                j.function.name,
                j.unique,
                j.data,
                int(j.priority),
                math.ceil(j.when),
                j.reducer,
                storable(j.retry),
                j.keep_result,
            )
            for j in adds
        ]
        answers = await self.backend.submit(submissions, self.prefix)
        for job, (job_id, prefix) in zip(adds, answers, strict=True):
            self.core.shared(job, cluster_handle(prefix, job_id))

    async def _ack(self, acks: list[tuple[int, int]]) -> None:
        deleted = await self.backend.ack(acks)
        for job_id, claim in acks:
            if job_id not in deleted:
                log.warning(
                    "Job %d (claim %d) finished here after another server took it"
                    " over; its result stands there",
                    job_id,
                    claim,
                )

    def _failed(self, error: Exception, adds: list[Job]) -> None:
        """A write failed: its submissions are refused (the rest is written again)."""
        if not self.outage:
            self.outage = True
            log.error("Cluster store failed (%s); refusing background jobs until it is back", error)
        reason = f"Queue store unavailable: {error}".encode(errors="replace")[:200]
        for job in adds:
            self.core.store_failed(job, reason)
