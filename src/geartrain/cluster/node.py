"""One server's part in a cluster: its lease, claims, acknowledgements and wake-ups.

The core hands every background job to :meth:`ClusterNode.add` (it is the
core's persister); after the commit the job belongs to the cluster, and the
core forgets it.  When this server has idle workers, the node claims up to
that many jobs of their functions in one round trip and gives them to the core
(:meth:`~geartrain.server.core.JobServer.adopt`), which wakes the workers
with NOOP as usual.  Finished jobs are acknowledged in batches, fenced by
their attempt number.

What triggers a claim: a worker going to sleep, a job finishing here, a
wake-up hint from any server's commit (PostgreSQL's NOTIFY or Redis pub/sub,
one per batch, not per job), and a poll every :data:`POLL` seconds behind
them, which also promotes epoch jobs and retries as they fall due.

The retry policies are the core's: a failed attempt of a job held here goes
back to the shared store due after its backoff (:meth:`ClusterNode.release`),
a job that failed for good moves to the shared failed set
(:meth:`ClusterNode.keep_failed`), and a recurring schedule's firing is
submitted by whichever server records the firing first
(:meth:`ClusterNode.fire`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..protocol import RES, PacketType, pack
from ..server.reply_order import answer_later
from ..store.records import decode_outcomes, encode_outcomes
from . import Failure, Retry, Submission, cluster_handle, parse_handle
from .answers import SharedAnswers
from .claims import Claims
from .deadline import with_deadline
from .failures import SharedFailedJobs
from .lease import Lease

if TYPE_CHECKING:
    from ..server.core import JobServer
    from ..server.model import Job, Peer
    from ..server.schedules import Schedule
    from ..store.records import FailedJob
    from .backend import ClusterBackend

__all__ = ["DEFAULT_LEASE", "ClusterNode"]

log = logging.getLogger("geartrain.cluster")

DEFAULT_LEASE = 10.0
"""Seconds a server's lease lasts; its jobs are taken over this long (plus one
sweep) after it dies."""

POLL = 1.0
"""Seconds between claims while workers are idle, in case a NOTIFY was missed."""

RETRY_DELAY = 1.0
"""Seconds between attempts to write acknowledgements while the database is down."""

MAX_BATCH = 2000
"""Jobs per statement."""

MAX_DEPTH = 32
"""Most jobs held here per worker of a function.  The depth starts at one and
doubles while workers go to sleep waiting for claims that come back full (many
short jobs); it falls back to one once a claim finds fewer jobs than asked."""


class ClusterNode:
    """This server's membership of the cluster, between the core and the shared store."""

    def __init__(
        self,
        backend: ClusterBackend,
        *,
        lease: float = DEFAULT_LEASE,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = Lease(lease, clock)
        self.backend = with_deadline(backend, self.lease.call_timeout)
        self.errors = backend.errors
        self.name = name or f"{socket.gethostname()} pid {os.getpid()}"
        self.core: JobServer | None = None
        self.prefix = b""
        self.held = Claims(self.lease)
        self.answers = SharedAnswers(self)  # for the admin commands
        self._adds: list[Job] = []
        self._acks: list[tuple[int, int]] = []
        self._releases: list[tuple[int, int, int]] = []
        self._retries: list[Retry] = []
        self._fails: list[Failure] = []
        self.failed = SharedFailedJobs(self.backend, self.keep_failed)
        self._writer: asyncio.Task[None] | None = None
        self._claimer: asyncio.Task[None] | None = None
        self._want = False
        self._starved = False  # a worker went to sleep since the last claim
        self._depth: dict[bytes, int] = {}  # jobs held per worker, by function
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._poller: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._outage = False
        self.claims = self.claimed = self.writes = 0  # counters, for tests and metrics

    # -- life -----------------------------------------------------------------

    @property
    def description(self) -> str:
        return self.backend.description

    async def start(self, core: JobServer) -> None:
        """Join the cluster: tables, LISTEN, a lease; then keep the core's
        background jobs and failed set."""
        try:
            await self.backend.open(self.kick)
            self.core = self.held.core = core
            self.prefix = core.handles.prefix.rstrip(b":")
            await self._renew()
        except self.errors as error:
            await self.backend.close()
            raise OSError(f"{self.backend.description}: {type(error).__name__}: {error}") from error
        core.keeper = self
        core.failed = self.failed
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())
        self._poll()
        log.info("Joined the cluster as server %d (%s)", self.lease.server, self.name)

    async def close(self) -> None:
        """Leave: finish the writes, give back unstarted jobs, drop the lease."""
        for handle in (self._poller, self._watchdog):
            if handle is not None:
                handle.cancel()
        for task in (self._heartbeat, self._claimer):
            if task is not None:
                task.cancel()
        self._releases.extend(self.held.drop_unstarted())
        try:
            await asyncio.wait_for(self._flush(), timeout=10)
            if self.lease.server:
                await self.backend.leave(self.lease.server)
        except self.errors + (asyncio.CancelledError,) as error:
            log.error("Leaving the cluster uncleanly: %s", error)
        await self.backend.close()

    def _unwritten(self) -> bool:
        return bool(self._adds or self._acks or self._releases or self._retries or self._fails)

    async def _flush(self) -> None:
        while self._writer is not None or self._unwritten():
            if self._writer is None:
                self._kick_writer()
            assert self._writer is not None
            await asyncio.shield(self._writer)
            if self._outage:
                return

    # -- the lease --------------------------------------------------------------

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.lease.interval)
            try:
                await self._renew()
                dead, moved, dropped = await self.backend.rescue(self._retry_limit())
                if dead or moved or dropped:
                    log.warning(
                        "Took over from %d dead server(s): %d job(s) queued again, %d past"
                        " --job-retries moved to the failed set",
                        dead,
                        moved,
                        dropped,
                    )
                if not self.backend.listening:
                    await self.backend.listen(self.kick)
                await self._write_progress()
                await self.failed.tend()
            except self.errors as error:
                log.warning("Cluster heartbeat failed: %s", error)

    async def _renew(self) -> None:
        sent = self.lease.clock()
        lease = self.lease
        if lease.server and not await self.backend.renew(lease.server, lease.ttl):
            log.error(
                "Lost the cluster lease of server %d (expired); its running jobs may run again"
                " elsewhere. Joining again.",
                lease.server,
            )
            self._lease_gone()
            sent = lease.clock()
        if not lease.server:
            lease.granted(await self.backend.register(self.name, lease.ttl), sent)
            log.info("Cluster lease granted: server %d", lease.server)
        else:
            lease.granted(lease.server, sent)
        self._arm_watchdog()
        self.kick()

    def _arm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        # A little late rather than early: event loop timers may fire early.
        delay = max(0.0, self.lease.deadline - self.lease.clock()) + 0.01
        self._watchdog = asyncio.get_running_loop().call_later(delay, self._check_deadline)

    def _check_deadline(self) -> None:
        """Tidy up when the lease lapses (what the core holds is checked at every
        hand-out anyway: see :meth:`before_hand_out`)."""
        self._watchdog = None
        if self.lease.valid:
            self._arm_watchdog()
        elif self.lease.server:
            log.error("Cluster lease not renewed in time: stopped claiming")
            self.held.check()

    def _lease_gone(self) -> None:
        self.held.drop_unstarted()
        self.lease.lost()

    def before_hand_out(self) -> None:
        """The core is about to hand a job to a worker: claims that may have lapsed
        are dropped first (:meth:`.Claims.check`)."""
        self.held.check()

    def _retry_limit(self) -> int:
        return self.core.config.job_retries if self.core is not None else -1

    # -- claims -----------------------------------------------------------------

    def kick(self) -> None:
        """Claim for idle workers soon (coalesces any number of calls)."""
        self._want = True
        if self._claimer is None and self.core is not None:
            self._claimer = asyncio.get_running_loop().create_task(self._claim())

    def hungry(self) -> None:
        self._starved = True
        self.kick()

    def _poll(self) -> None:
        self._give_back()
        self.kick()
        self._poller = asyncio.get_running_loop().call_later(POLL, self._poll)

    def _wants(self) -> list[tuple[bytes, int]]:
        """(function, how many): ``depth`` jobs queued here per worker of the
        function, so that a worker finishing a job finds its next one without
        waiting for a round trip to the database."""
        assert self.core is not None
        wants = []
        for f in self.core.functions.values():
            depth = self._depth.get(f.name, 1)
            want = len(f.workers) * depth - f.queued[0] - f.queued[1] - f.queued[2]
            if want > 0:
                wants.append((f.name, min(want, MAX_BATCH)))
        return wants

    def _give_back(self) -> None:
        """Queue again in the cluster the jobs held here beyond what this server's
        workers want (workers left, or the backlog shrank)."""
        core = self.core
        assert core is not None
        room = {
            f.name: len(f.workers) * self._depth.get(f.name, 1) for f in core.functions.values()
        }
        for job_id, attempt, job in self.held.items():
            f = job.function
            queued = f.queued[0] + f.queued[1] + f.queued[2]
            if job.worker is None and queued > room.get(f.name, 0) and core.disown(job.handle):
                self.held.let_go(job_id)
                self._releases.append((job_id, attempt, job.retries))
        if self._releases:
            self._kick_writer()

    async def _claim(self) -> None:
        core = self.core
        assert core is not None
        try:
            while self._want:
                self._want = False
                wants = self._wants()
                if not wants or not self.lease.valid:
                    return
                try:
                    rows = await self.backend.claim(self.lease.server, wants)
                except self.errors as error:
                    log.warning("Cluster claim failed: %s", error)
                    return
                self.claims += 1
                if not self.lease.valid:
                    # The lease lapsed during the claim: these go straight back.
                    self._releases.extend((r.id, r.attempt, r.retries) for r in rows)
                    self._kick_writer()
                    return
                starved, self._starved = self._starved, False
                got: dict[bytes, int] = {}
                for r in rows:
                    handle = cluster_handle(r.prefix, r.id)
                    job = core.adopt(
                        handle, r.function, r.unique, r.data, r.priority, r.reducer, r.id, r.retries
                    )
                    job.failures, job.outcomes = r.failures, decode_outcomes(r.outcomes)
                    self.held.hold(r.id, r.attempt, job)
                    got[r.function] = got.get(r.function, 0) + 1
                self.claimed += len(rows)
                for name, n in wants:
                    if got.get(name, 0) < n:
                        self._depth.pop(name, None)  # the backlog is gone
                        continue
                    self._want = True  # it may have more waiting
                    if starved:
                        # Workers waited for this claim: hold more of a backlog here.
                        self._depth[name] = min(MAX_DEPTH, self._depth.get(name, 1) * 2)
        finally:
            self._claimer = None

    # -- the core's keeper ---------------------------------------------------------

    coalesces_background = False  # in the shared store, over the whole cluster's jobs

    def keep(self, job: Job) -> bool:
        """A background job is the cluster's once its commit returns (``core.shared``)."""
        self._adds.append(job)
        self._kick_writer()
        return False

    def forget(self, job: Job) -> None:
        if not job.store_id:
            return
        attempt = self.held.let_go(job.store_id)
        if attempt is not None:
            self._acks.append((job.store_id, attempt))
            self._kick_writer()
        self.kick()  # a worker is free

    def retry(self, job: Job) -> bool:
        return self._release(job)

    def requeue(self, job: Job) -> bool:
        return self._release(job)

    def _release(self, job: Job) -> bool:
        """An attempt at a shared job failed and it runs again, on any member: at
        once (its worker was lost) or at ``job.when`` (its policy's backoff)."""
        if not job.store_id:
            return False  # a foreground job: this server's own
        held = self.held.let_go(job.store_id)
        if held is not None:
            assert self.core is not None
            delay = max(0.0, job.when - self.core.clock()) if job.when else 0.0
            outcomes = encode_outcomes(job.outcomes)
            self._retries.append(
                Retry(job.store_id, held, job.retries, job.failures, outcomes, delay)
            )
            self._kick_writer()
        return True

    def keep_failed(self, job: Job, record: FailedJob) -> None:
        """A held job failed for good: it moves to the shared failed set."""
        held = self.held.let_go(job.store_id)
        if held is not None:
            outcomes = encode_outcomes(record.outcomes)
            failure = Failure(job.store_id, held, record.attempts, outcomes, record.reason)
            self._fails.append(failure)
            self._kick_writer()

    def fire(self, schedule: Schedule, when: int) -> bool:
        """A recurring schedule's minute came: fire it, unless another server did."""
        job = Submission(schedule.function, b"", schedule.data, schedule.priority, 0, b"")
        self._spawn(self._fire(schedule, schedule.unique(when), job))
        return True

    async def _fire(self, schedule: Schedule, key: bytes, job: Submission) -> None:
        try:
            job_id = await self.backend.fire(key, job, self.prefix)
        except self.errors as error:
            log.error("Schedule %s did not fire: %s", schedule.name, error)
            return
        if job_id is not None:
            log.info("Schedule %s fired job %d", schedule.name, job_id)

    def status(self, peer: Peer, handle: bytes) -> bool:
        parsed = parse_handle(handle)
        if parsed is None:
            return False
        unknown = pack(RES, PacketType.STATUS_RES, (handle, b"0", b"0", b"0", b"0"))
        self._answer_later(peer, self._status(handle, *parsed, unknown), unknown)
        return True

    def status_unique(self, peer: Peer, unique: bytes) -> bool:
        if not unique:
            return False
        unknown = pack(RES, PacketType.STATUS_RES_UNIQUE, (unique, b"0", b"0", b"0", b"0", b"0"))
        self._answer_later(peer, self._status_unique(unique, unknown), unknown)
        return True

    def _answer_later(self, peer: Peer, answer: Awaitable[bytes], unknown: bytes) -> None:
        answer_later(peer, answer, lambda _error: unknown, self._tasks)

    async def _status(self, handle: bytes, prefix: bytes, job_id: int, unknown: bytes) -> bytes:
        row = await self.backend.status(job_id)
        if row is None or row[0] != prefix:
            return unknown
        running = b"1" if row[1] == 2 else b"0"
        reply = (handle, b"1", running, b"%d" % row[2], b"%d" % row[3])
        return pack(RES, PacketType.STATUS_RES, reply)

    async def _status_unique(self, unique: bytes, unknown: bytes) -> bytes:
        row = await self.backend.status_unique(unique)
        if row is None:
            return unknown
        running = b"1" if row[0] == 2 else b"0"
        reply = (unique, b"1", running, b"%d" % row[1], b"%d" % row[2], b"0")
        return pack(RES, PacketType.STATUS_RES_UNIQUE, reply)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- writes -------------------------------------------------------------------

    def _kick_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            await asyncio.sleep(0)  # the rest of this loop turn joins the batch
            while self._unwritten():
                if not await self._write_once():
                    await asyncio.sleep(RETRY_DELAY)
                    if not self._unwritten():
                        break
        finally:
            self._writer = None

    async def _write_once(self) -> bool:
        core = self.core
        assert core is not None
        adds, self._adds = self._adds[:MAX_BATCH], self._adds[MAX_BATCH:]
        acks, self._acks = self._acks[:MAX_BATCH], self._acks[MAX_BATCH:]
        releases, self._releases = self._releases[:MAX_BATCH], self._releases[MAX_BATCH:]
        retries, self._retries = self._retries[:MAX_BATCH], self._retries[MAX_BATCH:]
        fails, self._fails = self._fails[:MAX_BATCH], self._fails[MAX_BATCH:]
        try:
            if adds:
                submissions = [
                    Submission(
                        j.function.name,
                        j.unique,
                        j.data,
                        int(j.priority),
                        math.ceil(j.when),
                        j.reducer,
                    )
                    for j in adds
                ]
                answers = await self.backend.submit(submissions, self.prefix)
                for job, (job_id, prefix) in zip(adds, answers, strict=True):
                    core.shared(job, cluster_handle(prefix, job_id))
                adds = []
            if acks:
                deleted = await self.backend.ack(acks)
                for job_id, attempt in acks:
                    if job_id not in deleted:
                        log.warning(
                            "Job %d (attempt %d) finished here after another server took it"
                            " over; its result stands there",
                            job_id,
                            attempt,
                        )
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
            self._failed(error, adds, acks, releases)
            self._retries[:0] = retries
            self._fails[:0] = fails
            return False
        self.writes += 1
        if self._outage:
            self._outage = False
            log.warning("Cluster store is back")
        return True

    def _failed(
        self,
        error: Exception,
        adds: list[Job],
        acks: list[tuple[int, int]],
        releases: list[tuple[int, int, int]],
    ) -> None:
        if not self._outage:
            self._outage = True
            log.error("Cluster store failed (%s); refusing background jobs until it is back", error)
        assert self.core is not None
        reason = f"Queue store unavailable: {error}".encode(errors="replace")[:200]
        for job in adds:
            self.core.store_failed(job, reason)
        self._acks[:0] = acks
        self._releases[:0] = releases

    async def _write_progress(self) -> None:
        """Write the progress of running jobs, so that GET_STATUS elsewhere sees it."""
        changed = self.held.progress_changes()
        if changed:
            await self.backend.progress(changed)
