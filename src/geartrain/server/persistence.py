"""Group commit between the core and a durable store.

The core calls :meth:`StoreWriter.add` for each background job and
:meth:`StoreWriter.done` when a stored job is over.  Everything asked for while
a write is in flight goes into the next write, so under load each transaction
carries many jobs and throughput is bounded by the disk and the batch, not by
one fsync per job.  Only after a write returns does the core acknowledge the
jobs it carried (JOB_CREATED) and queue them for workers.

If the store fails, the jobs of that batch are refused (their submitters get
``ERROR QUEUE_ERROR``), deletions are kept and retried, and the outage is
logged once; the next write that succeeds ends it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..store import Store, StoredJob

if TYPE_CHECKING:
    from .core import JobServer
    from .jobs import Job

__all__ = ["StoreWriter"]

log = logging.getLogger("geartrain.server.store")

RETRY_DELAY = 1.0
"""Seconds between attempts to flush deletions while the store is down."""

DONE_DELAY = 0.05
"""Seconds a deletion may wait for company.  Deleting late only means that a
crash in between replays a finished job (at-least-once, as gearmand); it spares
the store one transaction per finished job when workers finish one at a time."""

MAX_BATCH = 5000
"""Jobs per transaction; bounds the latency of one write and the size of a statement."""


class StoreWriter:
    """Batches the core's store requests into transactions, one at a time.

    A submission starts a write at once (its client waits for JOB_CREATED);
    deletions ride along with the next write, or go on their own after
    :data:`DONE_DELAY`.
    """

    def __init__(self, store: Store, core: JobServer) -> None:
        self.store = store
        self.core = core
        self._adds: list[Job] = []
        self._dones: list[int] = []
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._outage = False
        self.writes = 0  # transactions committed, for metrics and tests

    def add(self, job: Job) -> None:
        self._adds.append(job)
        self._kick()

    def done(self, store_id: int) -> None:
        self._dones.append(store_id)
        if len(self._dones) >= MAX_BATCH:
            self._kick(flush=True)
        else:
            self._later(DONE_DELAY)

    @property
    def outage(self) -> bool:
        """The last write failed and none has succeeded since."""
        return self._outage

    @property
    def pending(self) -> int:
        return len(self._adds) + len(self._dones)

    async def drain(self) -> None:
        """Wait until everything asked for so far has been written (or refused)."""
        while self._task is not None or self._adds or (self._dones and not self._outage):
            if self._task is None:
                self._kick(flush=True)
            assert self._task is not None
            await asyncio.shield(self._task)

    def _kick(self, flush: bool = False) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(flush))

    def _later(self, delay: float) -> None:
        """Flush the deletions after ``delay`` unless a write takes them first."""
        if self._timer is None and self._task is None:
            self._timer = asyncio.get_running_loop().call_later(delay, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._kick(flush=True)

    async def _run(self, flush: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            # Let the rest of this loop turn's submissions join the first batch.
            await asyncio.sleep(0)
            while self._adds or (flush and self._dones):
                if not await self._write_batch() and not self._adds:
                    break
        finally:
            self._task = None
        if self._dones:
            self._later(RETRY_DELAY if self._outage else DONE_DELAY)

    async def _write_batch(self) -> bool:
        adds = self._adds[:MAX_BATCH]
        del self._adds[:MAX_BATCH]
        dones = self._dones[:MAX_BATCH]
        del self._dones[:MAX_BATCH]
        # A job can end before its add is written (a foreground job turned
        # background while running): then neither needs to reach the store.
        if adds and dones:
            ending = set(dones)
            added = {j.store_id for j in adds}
            dones = [i for i in dones if i not in added]
            written = [j for j in adds if j.store_id not in ending]
        else:
            written = adds
        records = [
            StoredJob(j.store_id, j.function.name, j.unique, j.data, int(j.priority), j.when)
            for j in written
        ]
        try:
            await self.store.write(records, dones)
        except Exception as error:  # any failure of the backend is an outage
            self._on_failure(error, adds, dones)
            return False
        self.writes += 1
        if self._outage:
            self._outage = False
            log.warning("Queue store is back; writes succeed again")
        stored = self.core.stored
        for job in adds:
            stored(job)
        return True

    def _on_failure(self, error: Exception, adds: list[Job], dones: list[int]) -> None:
        if not self._outage:
            self._outage = True
            log.error("Queue store failed (%s); refusing background jobs until it is back", error)
        reason = f"Queue store unavailable: {error}".encode(errors="replace")[:200]
        for job in adds:
            self.core.store_failed(job, reason)
        self._dones[:0] = dones  # keep deletions; they are retried

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
