"""The core's keeper in a cluster (:class:`geartrain.server.ports.Keeper`):
background jobs are the cluster's.

The core hands every background job to :meth:`SharedKeeper.keep`; once the
shared store has it, the job is the cluster's and the core forgets it
(``JobServer.shared``).  A job claimed here (:mod:`.claimer`) is the core's to
run; when it is over, fails an attempt or fails for good, the keeper has that
written to the store (:mod:`.writes`), fenced by its claim.  The retry
decisions are the core's: a failed attempt goes back to the store due after its
backoff, a job that failed for good moves to the shared failed set.  GET_STATUS
of a job not held here is answered from the store, and a recurring schedule's
firing is submitted by whichever member records it first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any

from ..protocol import RES, PacketType, pack
from ..server.reply_order import answer_later
from ..store.records import encode_outcomes
from . import Failure, Retry, Submission, parse_handle
from .claimer import Claimer
from .claims import Claims
from .failures import SharedFailedJobs
from .results import SharedResults
from .states import State
from .writes import Writes

if TYPE_CHECKING:
    from ..server.core import JobServer
    from ..server.model import Job, Peer
    from ..server.schedules import Schedule
    from ..store.records import FailedJob
    from .backend import ClusterBackend
    from .lease import Lease

__all__ = ["SharedKeeper"]

log = logging.getLogger("geartrain.cluster")


class SharedKeeper:
    """Where one member's core keeps its background jobs: the shared store, through
    its claims (``held``), claimer, writes and the shared failed set."""

    coalesces_background = False  # in the shared store, over the whole cluster's jobs
    shares = True

    def __init__(
        self,
        core: JobServer,
        backend: ClusterBackend,
        lease: Lease,
        errors: tuple[type[Exception], ...],
    ) -> None:
        call_later = core.call_later
        assert call_later is not None, "a member's core has timers"
        self.core = core
        self.backend = backend
        self.errors = errors
        self.call_later = call_later
        self.prefix = core.handles.prefix.rstrip(b":")
        self.writes = Writes(core, backend, self.prefix, errors, call_later)
        self.held = Claims(lease, core, self.writes.release)
        self.claimer = Claimer(core, backend, lease, self.held, self.writes, errors, call_later)
        self.failed = SharedFailedJobs(backend, self.keep_failed)
        self.results = SharedResults(backend, core.clock)
        self._tasks: set[asyncio.Task[Any]] = set()

    def keep(self, job: Job) -> bool:
        """A background job is the cluster's once its write returns (``core.shared``)."""
        self.writes.submit(job)
        return False

    def forget(self, job: Job) -> None:
        if not job.store_id:
            return
        claim = self.held.let_go(job.store_id)
        if claim is not None:
            self.writes.ack(job.store_id, claim)
        self.claimer.kick()  # a worker is free

    def retry(self, job: Job) -> bool:
        return self._again(job)

    def requeue(self, job: Job) -> bool:
        return self._again(job)

    def _again(self, job: Job) -> bool:
        """An attempt at a shared job failed and it runs again, on any member: at
        once (its worker was lost) or at ``job.when`` (its policy's backoff)."""
        if not job.store_id:
            return False  # a foreground job: this server's own
        claim = self.held.let_go(job.store_id)
        if claim is not None:
            delay = max(0.0, job.when - self.core.clock()) if job.when else 0.0
            outcomes = encode_outcomes(job.outcomes)
            self.writes.retry(
                Retry(job.store_id, claim, job.retries, job.failures, outcomes, delay)
            )
        return True

    def keep_failed(self, job: Job, record: FailedJob) -> None:
        """A held job failed for good: it moves to the shared failed set."""
        claim = self.held.let_go(job.store_id)
        if claim is not None:
            outcomes = encode_outcomes(record.outcomes)
            self.writes.fail(Failure(job.store_id, claim, record.attempts, outcomes, record.reason))

    def before_hand_out(self) -> None:
        """The core is about to hand a job to a worker: claims that may have lapsed
        are dropped first (:meth:`.Claims.check`)."""
        self.held.check()

    def hungry(self) -> None:
        self.claimer.hungry()

    # -- recurring schedules --------------------------------------------------------

    def fire(self, schedule: Schedule, when: int) -> bool:
        """A recurring schedule's minute came: fire it, unless another member did."""
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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- GET_STATUS of jobs not held here ----------------------------------------------

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
        running = b"1" if row[1] is State.CLAIMED else b"0"
        reply = (handle, b"1", running, b"%d" % row[2], b"%d" % row[3])
        return pack(RES, PacketType.STATUS_RES, reply)

    async def _status_unique(self, unique: bytes, unknown: bytes) -> bytes:
        row = await self.backend.status_unique(unique)
        if row is None:
            return unknown
        running = b"1" if row[0] is State.CLAIMED else b"0"
        reply = (unique, b"1", running, b"%d" % row[1], b"%d" % row[2], b"0")
        return pack(RES, PacketType.STATUS_RES_UNIQUE, reply)
