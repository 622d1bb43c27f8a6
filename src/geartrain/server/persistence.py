"""Group commit between the core and a durable store.

The :class:`StoreWriter` is the core's keeper (:class:`~.ports.Keeper`) when
there is a durable store: the core hands it each background job
(:meth:`StoreWriter.keep`) and each job that is over (:meth:`StoreWriter.forget`).
Everything asked for while a write is in flight goes into the next write, so
under load each transaction carries many jobs and throughput is bounded by the
disk and the batch, not by one fsync per job.  Only after a write returns does
the core acknowledge the jobs it carried (JOB_CREATED) and queue them for
workers.  Deletions start a write at once too, so that a crash replays only the
jobs that were running, not ones that had already finished.

Clients that submit one background job at a time fall into lockstep with the
writer: each one's next job arrives while another's is being written, so every
transaction carries a single job.  The writer therefore remembers which
submitters come straight back after their acknowledgement ("regulars") and,
before a write, waits a moment for the regulars it has just acknowledged, so
that their jobs share the transaction (as PostgreSQL's ``commit_delay``, but
waiting only for submitters that are on their way).  Only where a transaction
costs an fsync (``gather``, the power level) is that worth the wait.

A store that keeps a log (SQLite at the crash level: ``store.journal``) needs
no transaction to acknowledge: each loop turn's submissions go to its
``append`` at the end of the turn and are acknowledged at once.  Completions,
which nobody waits for, join the next append, at most :data:`DONE_DELAY`
later: one append per millisecond instead of one per completion, which is most
of what durability costs a drain.  Transactions remain for the failed-job set,
for what comes during an outage, and for every other store.

If the store fails, the jobs of that batch are refused (their submitters get
``ERROR QUEUE_ERROR``), deletions are kept and retried, and the outage is
logged once; the next write that succeeds ends it.  A full store (``StoreFull``)
still takes deletions: they are written on their own, since they are how it
gets room back, and the jobs beside them tried once more.  Its outage ends when
the store reports room again (read once a second, so that a disk on the edge of
full is not logged full and back by the millisecond).

A store that works in the background (SQLite: fsyncs, checkpoints) reports its
state through ``health()``, read once a second.  The writer turns the reports
and its own writes into one state, ok, full or failing (the console's
``/readyz`` and ``/metrics``), logged once at the start and the end of each
episode; and while the background fsync has failed :data:`SYNC_FAILURE_LIMIT`
times in a row it refuses background jobs, rather than acknowledge what a
power cut could take, until an fsync succeeds again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from ..retry import storable
from ..store import Store, StoreFull, StoreHealth
from ..store.records import FailedJob, KeptResult, StoredJob, encode_outcomes
from .changes import KeyedChanges
from .ports import LocalKeeper

if TYPE_CHECKING:
    from .core import JobServer
    from .model import Job, Peer

__all__ = ["StoreWriter"]

log = logging.getLogger("geartrain.server.store")


class Timer(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], Timer]

RETRY_DELAY = 1.0
"""Seconds between attempts to flush deletions while the store is down."""

MAX_BATCH = 5000
"""Jobs per transaction; bounds the latency of one write and the size of a statement."""

DONE_DELAY = 0.001
"""Seconds a completion may wait for the next append to a logging store: after a
kill, jobs that finished this shortly before it run again (besides the running ones)."""

SYNC_FAILURE_LIMIT = 3
"""Background fsync rounds (one a second) that may fail in a row before background
jobs are refused: a few seconds of a failing disk, after which acknowledging a job
would promise a crash safety that is gone."""

HEALTH_INTERVAL = 1.0
"""Seconds between readings of a store's ``health()``."""

RETURN_WINDOW = 0.001
"""Seconds within which a submitter must send its next job after its
acknowledgement to count as a regular, and the longest a write waits for the
regulars it has just acknowledged (about the event loop's timer resolution)."""


class StoreWriter(LocalKeeper):
    """Batches the core's store requests into transactions, one at a time.

    A submission or a deletion starts a write at once (unless one is in
    flight: then it joins the next).
    """

    def __init__(
        self,
        store: Store,
        core: JobServer,
        *,
        gather: bool = True,
        clock: Callable[[], float] = time.monotonic,
        call_later: CallLater | None = None,
    ) -> None:
        self.store = store
        self.core = core
        # The time its rules read (regulars, the completion delay, health readings,
        # retries), and its timers: the event loop's unless given.
        self.clock = clock
        self._call_later = call_later
        # Waiting for returning submitters pays where a commit costs an fsync;
        # where it costs less than the wait, it only delays.
        self.gather = gather
        self._adds: list[Job] = []
        self._dones: list[int] = []
        self._task: asyncio.Task[None] | None = None
        self._timer: Timer | None = None
        self._failure: Exception | None = None  # why the last write failed (an outage)
        self.writes = 0  # transactions committed or log appends, for metrics and tests
        self.failed_writes = 0  # writes and appends that failed, for metrics
        # The store's own report, and whether its failing fsync has background jobs refused.
        self._health: Callable[[], StoreHealth] | None = getattr(store, "health", None)
        self.health = StoreHealth(None, 0, 0)
        self._unsynced = False
        self._health_timer: Timer | None = None
        self._logged = _OK  # the state last logged
        # Submitters acknowledged lately that have not sent another job yet, and when.
        self._acked: dict[Peer, float] = {}
        # Submitters whose last job came within RETURN_WINDOW of their acknowledgement.
        self._regulars: set[Peer] = set()
        # The regulars a write is waiting for, and what wakes it.
        self._awaited: set[Peer] = set()
        self._gathered: asyncio.Future[None] | None = None
        # Changes to the failed-job set and the kept results, written before the
        # queue changes of the same round.
        self._failed = KeyedChanges[FailedJob](store.write_failed)
        self._results = KeyedChanges[KeptResult](store.write_results)
        # A logging store's append, and this loop turn's changes for it.
        self._append: Callable[[Sequence[StoredJob], Sequence[int]], None] | None = (
            getattr(store, "append", None) if getattr(store, "journaled", False) else None
        )
        self.next_id = 1  # store ids: increasing in submission order
        self._turn_adds: list[Job] = []
        self._turn_dones: list[int] = []
        self._done_timer: Timer | None = None
        # How this turn's append is put off to the turn's end (the server hands
        # in the network's, which runs it just before the replies are written).
        self.at_turn_end: Callable[[Callable[[], None]], None] = _call_soon
        if self._health is not None:
            self._check_health()

    def _appending(self) -> bool:
        """Whether the next change can go to this turn's append: the store logs, and
        nothing older is waiting for a transaction (order is kept)."""
        # Without a write in flight or an outage, nothing waits for a transaction.
        return self._append is not None and self._task is None and not self.outage

    def _append_turn(self) -> None:
        if self._done_timer is not None:
            self._done_timer.cancel()
            self._done_timer = None
        adds, self._turn_adds = self._turn_adds, []
        dones, self._turn_dones = self._turn_dones, []
        if not adds and not dones:
            return
        assert self._append is not None
        written, dones = _net(adds, dones)
        try:
            self._append(list(map(_record, written)), dones)
        except Exception as error:  # as in _write_batch: any failure is an outage
            self._on_failure(error, adds, dones)
            self._later(RETRY_DELAY)
            return
        self.writes += 1
        stored = self.core.stored
        for job in adds:
            stored(job)

    # -- the core's keeper --------------------------------------------------------

    def restorable(self, stored: list[StoredJob]) -> list[StoredJob]:
        """The jobs to restore of what the store kept, in submission order: of two
        copies of one handle (a crash between writing a retry and deleting its
        previous copy) the later one, the earlier one being deleted."""
        latest: dict[bytes, StoredJob] = {}
        for s in stored:
            self.next_id = max(self.next_id, s.id + 1)
            if s.handle:
                previous = latest.get(s.handle)
                if previous is not None:
                    self.done(previous.id)
                latest[s.handle] = s
        return [s for s in stored if not s.handle or latest[s.handle] is s]

    def keep(self, job: Job) -> bool:
        """A background job into the store: into a logging store's log at once (one
        record), so the core can acknowledge it in this turn as a memory queue
        would; else into the next transaction, acknowledged after its commit."""
        job.store_id = self._take_id()
        if self._appending():
            assert self._append is not None
            try:
                self._append([_record(job)], ())
            except Exception as error:  # as in _write_batch: any failure is an outage
                self._begin_outage(error)
            else:
                self.writes += 1
                return True
        self._batch(job)
        return False

    def forget(self, job: Job) -> None:
        if job.store_id:
            self.done(job.store_id)

    def retry(self, job: Job) -> bool:
        """A background retry is written anew under a new id, due at ``job.when``
        with its outcomes; its previous copy is deleted after it."""
        if job.background:
            previous, job.store_id = job.store_id, self._take_id()
            self.add(job)
            if previous:
                self.done(previous)
        return False

    def requeue(self, job: Job) -> bool:
        return False

    def _take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def add(self, job: Job) -> None:
        """A job (a retry, written anew) into this turn's append, or the next transaction."""
        if self._appending():
            if not self._turn_adds:
                self.at_turn_end(self._append_turn)
            self._turn_adds.append(job)
            return
        self._batch(job)

    def _batch(self, job: Job) -> None:
        """A job into the next transaction (the core acknowledges it after the commit)."""
        self._adds.append(job)
        if job.waiters:
            self._returned(job.waiters[0])
        self._kick()

    def _returned(self, peer: Peer) -> None:
        acked = self._acked.pop(peer, None)
        if acked is not None and self.clock() - acked < RETURN_WINDOW:
            self._regulars.add(peer)
        else:
            self._regulars.discard(peer)
        awaited = self._awaited
        if peer in awaited:
            awaited.discard(peer)
            if not awaited:
                self._stop_gathering()

    def _stop_gathering(self) -> None:
        if self._gathered is not None and not self._gathered.done():
            self._gathered.set_result(None)

    def failed_changed(self, added: list[FailedJob], removed: list[bytes]) -> None:
        """Record changes to the failed-job set (``FailedJobs.persist``)."""
        self._failed.note(added, removed)
        self._side_changed()

    def results_changed(self, added: list[KeptResult], removed: list[bytes]) -> None:
        """Record changes to the kept results (``Results.persist``)."""
        self._results.note(added, removed)
        self._side_changed()

    def _side_changed(self) -> None:
        if self.outage:
            self._later(RETRY_DELAY)
        else:
            self._kick()

    def done(self, store_id: int) -> None:
        if self._appending():
            if not self._turn_adds and self._done_timer is None:
                self._done_timer = self.call_later(DONE_DELAY, self._append_turn)
            self._turn_dones.append(store_id)
            return
        self._dones.append(store_id)
        if self.outage:
            self._later(RETRY_DELAY)
        else:
            self._kick()

    @property
    def outage(self) -> bool:
        """Background jobs are refused: the last write failed and none has succeeded
        since, or the store's background fsync keeps failing."""
        return self._failure is not None or self._unsynced

    @property
    def state(self) -> tuple[str, str]:
        """``ok``, ``full`` or ``failing``, and why (empty when ok)."""
        problem = self._failure or self.health.problem
        if problem is None:
            return _OK
        return ("full" if isinstance(problem, StoreFull) else "failing", str(problem))

    def _check_health(self) -> None:
        """Read the store's report: a store without room is an outage (before a write
        fails, say after a restart on a full disk) until it has room again; a failing
        fsync refuses background jobs past the limit, until one succeeds."""
        assert self._health is not None
        self.health = health = self._health()
        if isinstance(health.problem, StoreFull):
            self._failure = self._failure or health.problem
        elif isinstance(self._failure, StoreFull):
            self._failure = None
        self._unsynced = health.unsynced >= SYNC_FAILURE_LIMIT
        self._log_state()
        self._health_timer = self.call_later(HEALTH_INTERVAL, self._check_health)

    def _log_state(self) -> None:
        """Log the start and the end of each episode of trouble, once."""
        state, reason = self.state
        logged, self._logged = self._logged, (state, "refusing" if self.outage else "")
        if self._logged == logged:
            return
        if state == "ok":
            log.warning("Queue store is back; writes succeed again")
        elif self.outage:
            until = "there is room" if state == "full" else "it is back"
            word = "full" if state == "full" else "failed"
            log.error("Queue store %s (%s); refusing background jobs until %s", word, reason, until)
        elif logged[0] != state:
            log.error("Queue store %s (%s); background jobs are still accepted", state, reason)

    @property
    def pending(self) -> int:
        return (
            len(self._adds)
            + len(self._dones)
            + len(self._turn_adds)
            + len(self._turn_dones)
            + len(self._failed)
            + len(self._results)
        )

    async def drain(self) -> None:
        """Wait until everything asked for so far has been written (or refused)."""
        self._append_turn()
        while (
            self._task is not None
            or self._adds
            or ((self._dones or self._side_changes) and not self.outage)
        ):
            if self._task is None:
                self._kick()
            assert self._task is not None
            await asyncio.shield(self._task)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        if self._call_later is not None:
            return self._call_later(delay, callback)
        return asyncio.get_running_loop().call_later(delay, callback)

    def _kick(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _later(self, delay: float) -> None:
        """Retry the deletions after ``delay`` unless a write takes them first."""
        if self._timer is None and self._task is None:
            self._timer = self.call_later(delay, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._kick()

    async def _run(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            # Let the rest of this loop turn's submissions join the first batch.
            await asyncio.sleep(0)
            while self._adds or self._dones or self._side_changes:
                if self.gather and self._adds and len(self._adds) < MAX_BATCH:
                    await self._gather()
                if not await self._write_batch() and not self._adds:
                    break
            if self._down and not (self._adds or self._dones or self._side_changes):
                await self._probe()
        finally:
            self._task = None
        if self._dones or self._side_changes or self._down:
            self._later(RETRY_DELAY)

    @property
    def _down(self) -> bool:
        """The last write failed, not for want of room (health readings follow that)."""
        return self._failure is not None and not isinstance(self._failure, StoreFull)

    async def _probe(self) -> None:
        """In an outage with nothing to write, ask the store whether it takes writes
        again: readiness comes back without waiting for a submission."""
        try:
            await self.store.check()
        except Exception as error:  # any failure of the backend: still out
            self._failure = error
            return
        self._failure = None
        self._log_state()

    @property
    def _side_changes(self) -> bool:
        return bool(self._failed or self._results)

    async def _gather(self) -> None:
        """Wait (at most RETURN_WINDOW) for the regulars just acknowledged to submit again."""
        now = self.clock()
        awaited = {
            peer
            for peer, acked in self._acked.items()
            if peer in self._regulars and not peer.closed and now - acked < RETURN_WINDOW
        }
        if not awaited:
            return
        loop = asyncio.get_running_loop()
        self._awaited = awaited
        self._gathered = loop.create_future()
        timer = self.call_later(RETURN_WINDOW, self._stop_gathering)
        try:
            await self._gathered
        finally:
            timer.cancel()
            # Those that did not come back in time are no longer expected to.
            self._regulars -= self._awaited
            self._awaited = set()
            self._gathered = None

    def _acknowledged(self, adds: list[Job]) -> None:
        """Remember who was acknowledged, and forget those who did not come back.

        Submitters with jobs still waiting for the next write (pipelining
        clients) are not remembered: nothing needs to wait for them.
        """
        now = self.clock()
        acked = self._acked
        for peer in [p for p, t in acked.items() if now - t >= RETURN_WINDOW]:
            del acked[peer]
            self._regulars.discard(peer)
        busy = {job.waiters[0] for job in self._adds if job.waiters}
        for job in adds:
            for peer in job.waiters or ():
                if peer not in busy:
                    acked[peer] = now

    async def _write_batch(self) -> bool:
        adds = self._adds[:MAX_BATCH]
        del self._adds[:MAX_BATCH]
        dones = self._dones[:MAX_BATCH]
        del self._dones[:MAX_BATCH]
        if self._unsynced and adds:
            # Not the store's refusal but the fsync rule's: no promise it cannot keep.
            self._refuse(adds, self.health.problem)
            adds = []
        written, dones = _net(adds, dones)
        records = [_record(j) for j in written]
        try:
            # Before the queue write that deletes those jobs' rows (a crash in
            # between leaves a job in both: at least once, never lost).
            if self._failed:
                await self._failed.flush()
            if self._results:
                await self._results.flush()
            try:
                await self.store.write(records, dones)
            except StoreFull:
                if not (records and dones):
                    raise
                # The deletions on their own (they are how a full store gets room
                # back), then the new jobs once more.
                await self.store.write([], dones)
                self.writes += 1
                dones = []
                await self.store.write(records, [])
        except Exception as error:  # any failure of the backend is an outage
            self._on_failure(error, adds, dones)
            return False
        self.writes += 1
        if self._failure is not None and not isinstance(self._failure, StoreFull):
            self._failure = None
            self._log_state()
        self._acknowledged(adds)
        stored = self.core.stored
        for job in adds:
            stored(job)
        return True

    def _begin_outage(self, error: Exception) -> None:
        self.failed_writes += 1
        self._failure = error
        self._log_state()

    def _on_failure(self, error: Exception, adds: list[Job], dones: list[int]) -> None:
        self._begin_outage(error)
        self._refuse(adds, error)
        self._dones[:0] = dones  # keep deletions; they are retried

    def _refuse(self, adds: list[Job], error: Exception | None) -> None:
        reason = f"Queue store unavailable: {error}".encode(errors="replace")[:200]
        for job in adds:
            self.core.store_failed(job, reason)

    def close(self) -> None:
        if self._health_timer is not None:
            self._health_timer.cancel()
            self._health_timer = None
        if self._done_timer is not None:
            self._done_timer.cancel()
            self._done_timer = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


_OK = ("ok", "")


def _call_soon(callback: Callable[[], None]) -> None:
    asyncio.get_running_loop().call_soon(callback)


def _net(adds: list[Job], dones: list[int]) -> tuple[list[Job], list[int]]:
    """What to write: a job can end before its add is written (a foreground job
    turned background while running), and then neither needs to reach the store."""
    if not adds or not dones:
        return adds, dones
    ending = set(dones)
    added = {j.store_id for j in adds}
    return [j for j in adds if j.store_id not in ending], [i for i in dones if i not in added]


def _record(job: Job) -> StoredJob:
    return StoredJob(
        job.store_id,
        job.function.name,
        job.unique,
        job.data,
        int(job.priority),
        math.ceil(job.when),  # a retry's sub-second wait rounds up to the store's seconds
        job.handle,
        job.failures,
        encode_outcomes(job.outcomes) if job.outcomes else "",
        storable(job.retry),
    )
