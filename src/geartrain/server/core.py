"""The job server's rules, with no I/O.

Everything that decides which job a worker gets, when a job is created,
coalesced, retried, failed or dropped, and what each peer is told, lives in
this module.  It sees connections only as :class:`~.model.Peer` objects with a
``send(bytes)`` and a ``close()``; timers come from the ``call_later`` it is
given, time from its ``clock``.  What it keeps it asks small parts to keep:
the job table (:mod:`.table`), the queues and epoch schedule (:mod:`.queues`),
handles (:mod:`.handles`), where background jobs live (a :class:`~.ports.Keeper`)
and the failed-job set (a :class:`~.ports.FailedSet`).  The I/O layer
(:mod:`.network`) feeds it decoded packets and admin lines.

Where gearmand 1.1 departs from the protocol text, this follows the text and
gearmand 2.0's fixes; each such place says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from ..protocol import HEADER, RES, PacketType, frame
from ..retry import stored as stored_retry
from ..store.records import FailedJob, StoredJob, decode_outcomes
from .access import ANONYMOUS, AccessRules, RefusalLog
from .audit import Audit
from .failed import DEFAULT_MAX_AGE, DEFAULT_MAX_JOBS, FailedJobs
from .flags import ServerConfig
from .handles import Handles
from .limits import LimitEpisode
from .logs import NOTICE
from .model import DONE, NORMAL, PENDING, QUEUED, RUNNING, SCHEDULED, Function, Job, Peer
from .pauses import Pauses
from .policies import Policies, Policy
from .ports import FailedSet, InMemory, Keeper, Observer, PauseStore
from .queues import Queues
from .replies import (
    ERR_PERMISSION,
    ERR_QUEUE_FULL,
    ERR_UNIQUE,
    NO_JOB,
    NOOP,
    error_packet,
    job_created,
)
from .reply_order import owe, pay
from .results import Results
from .retries import Next, decide, failed_record, note_attempt
from .retry_extension import attempt_packet
from .schedules import Recurring, Schedule
from .settings import Settings
from .stats import Events, Stats
from .table import Dropped, JobTable

__all__ = ["JobServer"]

log = logging.getLogger("geartrain.server")

T = PacketType
# The job path's packet types as static constants: the compiled build would look an
# enum member up on its class each time.
GRAB_JOB: Final = T.GRAB_JOB
GRAB_JOB_UNIQ: Final = T.GRAB_JOB_UNIQ
GRAB_JOB_ALL: Final = T.GRAB_JOB_ALL
JOB_ASSIGN: Final = T.JOB_ASSIGN
JOB_ASSIGN_UNIQ: Final = T.JOB_ASSIGN_UNIQ
JOB_ASSIGN_ALL: Final = T.JOB_ASSIGN_ALL
WORK_COMPLETE: Final = T.WORK_COMPLETE

MAX_UNIQUE = 64  # PROTOCOL: unique IDs are at most 64 bytes


class JobServer:
    """All jobs, functions and peers of one server, and the rules over them."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config = config or ServerConfig()
        self.call_later = call_later
        self.clock = clock
        self.table = JobTable(config.max_idle_functions)
        self.jobs = self.table.jobs  # by handle, for the admin commands and the console
        self.functions = self.table.functions
        self.queues = Queues(clock, call_later, self._wake, config.round_robin)
        self.handles = Handles(config.handle_prefix)
        self.pauses = Pauses(self.functions, self._resumed)
        self.table.paused = self.pauses.names
        self.pause_store: PauseStore | None = None  # where pauses outlive a restart
        self.keeper: Keeper = InMemory()
        self.stats = Stats()
        self.events = Events(self.stats)
        self.policies = Policies()
        self.failed: FailedSet = FailedJobs(self.resubmit, clock)
        self.failed_bounds = (DEFAULT_MAX_JOBS, DEFAULT_MAX_AGE)  # the [failed] settings
        self.results = Results(clock, call_later)  # kept results of background jobs
        self.recurring = Recurring(self._fire_schedule, call_later, clock)
        self.audit = Audit(clock)  # operators' actions: the console's and the admin protocol's
        self.peers: dict[Peer, None] = {}  # in connection order, for `workers`
        self._limit_queue = LimitEpisode(
            "Job limit reached (%d jobs, %d bytes held): refusing submissions"
        )
        self._limit_function = LimitEpisode(
            "Job limit of function %s reached (%d jobs, %d bytes held): refusing submissions"
        )
        self.on_idle: Callable[[], None] | None = None  # called when the last job leaves
        self.on_shutdown: Callable[[bool], None] | None = None  # set by the app
        # Access rules (see .access); None when there are none: nothing is checked.
        self.access: AccessRules | None = None
        self.refusals = RefusalLog()
        self._internal = Peer(lambda data: None, lambda: None, "geartrain")

    def use_failed(self, failed: FailedSet) -> None:
        """Keep failed jobs in ``failed`` from now on (a durable store's set, or the
        cluster's), bounded as the settings say."""
        failed.bound(*self.failed_bounds)
        self.failed = failed

    @property
    def observer(self) -> Observer | None:
        return self.events.observer

    @observer.setter
    def observer(self, observer: Observer | None) -> None:
        self.events.observer = observer

    def apply_settings(self, settings: Settings) -> None:
        """Take a (re)loaded settings file: policies, failed-set bounds, schedules."""
        self.policies = settings.policies
        self.failed_bounds = (settings.failed_max_jobs, settings.failed_max_age)
        self.failed.bound(*self.failed_bounds)
        self.results.bound(settings.results_max_jobs, settings.results_max_bytes)
        self.recurring.set(settings.schedules)
        self.apply_access(settings.access)

    # -- connections ------------------------------------------------------

    def connect(self, peer: Peer) -> None:
        peer.exceptions = self.config.exceptions
        peer.connected_at = self.clock()
        if self.access is not None:
            peer.identity = self.access.identify(peer.host, peer.names)
        self.peers[peer] = None

    def disconnect(self, peer: Peer) -> None:
        """The connection is gone: requeue its running jobs, detach it from its jobs."""
        if peer.closed:
            return
        peer.closed = True
        self.peers.pop(peer, None)
        self.drop_abilities(peer, None)
        if peer.attached:
            for job in peer.attached:
                self._detach(job, peer)
            peer.attached = None

    # -- submission ---------------------------------------------------------

    def function(self, name: bytes) -> Function:
        return self.table.function(name)

    def submit(
        self,
        peer: Peer,
        name: bytes,
        unique: bytes,
        data: bytes,
        priority: int,
        background: bool,
        when: float = 0.0,
        reducer: bytes = b"",
    ) -> Job | None:
        """SUBMIT_JOB and friends: create or coalesce a job and answer JOB_CREATED."""
        retry = peer.next_retry  # the retries extension: for this submission only
        if retry is not None:
            peer.next_retry = None
        if len(unique) > MAX_UNIQUE:
            peer.send(ERR_UNIQUE)
            return None
        access = self.access
        if access is not None and not access.may("submit", peer.identity, name):
            self.refused(peer, "submit", name)
            peer.send(ERR_PERMISSION)
            return None
        table = self.table
        f = table.functions.get(name) or table.function(name)
        # A shared job coalesces in the cluster's store, not here.
        index = bool(unique) and (not background or self.keeper.coalesces_background)
        if index:
            existing = table.find(f, unique, data)
            if existing is not None:
                if access is None or access.joins(existing.owner, peer.identity):
                    self.stats.coalesced += 1
                    self._coalesce(existing, peer, background)
                    self._result_asked(existing, peer, background)
                    return existing
                # Another identity's job: this one runs on its own and the key
                # stays with the first, so nobody joins a stranger's job.
                index = False
        if self._queue_full(f, priority, len(data)):
            peer.send(ERR_QUEUE_FULL)
            return None
        job = Job(self.handles.new(), f, unique, data, priority, background)
        job.when = when
        job.reducer = reducer
        job.retry = retry
        job.created_at = self.clock()
        if access is not None:
            job.owner = peer.identity
        table.add(job, index)
        self.events.submitted(job)
        self._result_asked(job, peer, background)
        if not background:
            self._attach(job, peer)
        elif not self._kept(job, [peer]):
            return job
        peer.send(job_created(job.handle))
        self.queues.put(job)
        return job

    def _result_asked(self, job: Job, peer: Peer, background: bool) -> None:
        if background and peer.keep_result:  # the submitter's opt-in (see .results)
            job.keep_result = max(job.keep_result, peer.keep_result)
            if not self.keeper.shares:  # a shared job is named (and kept) by the cluster
                self.results.expect(job.handle, job.function.name, peer.keep_result)

    def _kept(self, job: Job, waiters: list[Peer]) -> bool:
        """Hand a background job to its keeper: True if it is kept now (acknowledge
        it now); otherwise it waits, unacknowledged, for ``stored`` or ``shared``
        and its ``waiters`` are owed their JOB_CREATED."""
        job.state = PENDING
        job.waiters = waiters
        if self.keeper.keep(job):
            job.waiters = None
            return True
        for peer in waiters:
            owe(peer, job)
        return False

    def _queue_full(self, f: Function, priority: int, size: int) -> bool:
        """The function's `maxqueue`, its own limits (settings file, or the
        max_function_* defaults), or max_jobs and max_job_bytes (0: none); reaching
        one but `maxqueue` is counted and logged."""
        limits = f.max_queue
        if limits is not None and limits[priority] and f.total >= limits[priority]:
            return True
        config = self.config
        policy = self.policies.for_function(f.name)
        max_jobs = config.max_function_jobs if policy.max_jobs is None else policy.max_jobs
        max_bytes = config.max_function_bytes if policy.max_bytes is None else policy.max_bytes
        if (max_jobs and f.total >= max_jobs) or (max_bytes and f.data_bytes + size > max_bytes):
            self.stats.limit_function += 1
            name = f.name.decode(errors="replace")
            self._limit_function.reached(name, f.total, f.data_bytes, key=f.name)
            return True
        table = self.table
        if (config.max_jobs and len(table.jobs) >= config.max_jobs) or (
            config.max_job_bytes and table.job_bytes + size > config.max_job_bytes
        ):
            self.stats.limit_queue += 1
            self._limit_queue.reached(len(table.jobs), table.job_bytes)
            return True
        return False

    def _coalesce(self, job: Job, peer: Peer, background: bool) -> None:
        """A submission matched an existing job: answer with its handle."""
        if not background:
            self._attach(job, peer)
        elif not job.background:
            # gearmand leaves the job foreground, so it is dropped when its clients
            # leave although this submitter was told it exists; keep it instead,
            # and make it durable like any background job.
            job.background = True
            state = job.state  # queued or running as before; only its keeping changes
            self._kept(job, [])
            job.state = state
        if job.waiters is not None:
            # A store write for this job is in flight: acknowledge after it.
            job.waiters.append(peer)
            owe(peer, job)
        else:
            peer.send(job_created(job.handle))

    def _attach(self, job: Job, peer: Peer) -> None:
        if job.clients is None:
            job.clients = [peer]
        else:
            job.clients.append(peer)
        if peer.attached is None:
            peer.attached = {job}
        else:
            peer.attached.add(job)

    def _detach(self, job: Job, peer: Peer) -> None:
        """A waiting client left; a foreground job nobody waits for is dropped."""
        clients = job.clients
        if clients is None:
            return
        while peer in clients:
            clients.remove(peer)
        if not clients and not job.background:
            job.clients = None
            self._abandon(job)

    def _abandon(self, job: Job) -> None:
        """Nobody wants this job any more: drop it, or its result if it is running."""
        if job.state is RUNNING:
            job.ignored = True  # the worker finishes; the result goes nowhere
            self.table.unindex(job)
        elif job.state is not DONE:
            self._remove(job)

    # -- the keeper's answers -------------------------------------------------

    def stored(self, job: Job) -> None:
        """The store committed ``job``: acknowledge it and let workers have it."""
        self._acknowledge(job, job.handle)
        # A job made durable by a later background submission may already be
        # queued, running or even finished (its forget() then follows this keep).
        if job.state is PENDING:
            self.queues.put(job)

    def shared(self, job: Job, handle: bytes) -> None:
        """Cluster mode: the shared store committed ``job`` (or coalesced it into the
        job ``handle``).  Acknowledge it; any server of the cluster may run it now."""
        self._remove(job)
        self._acknowledge(job, handle)

    def _acknowledge(self, job: Job, handle: bytes) -> None:
        waiters, job.waiters = job.waiters, None
        created = job_created(handle)
        for peer in waiters or ():
            if not peer.closed:
                pay(peer, job, created)

    def store_failed(self, job: Job, reason: bytes) -> None:
        """The store could not take ``job``: tell its submitters; it never existed."""
        waiters, job.waiters = job.waiters, None
        error = error_packet(b"QUEUE_ERROR", reason)
        for peer in waiters or ():
            if not peer.closed:
                pay(peer, job, error)
        job.store_id = 0
        if job.state is PENDING:
            self._remove(job)
            if job.outcomes:  # a failed job sent back by `retry failed`: keep it failed
                policy = self.policies.for_function(job.function.name)
                self._keep_failed(job, policy, "the store refused its retry")
        elif job.failures and job.background:
            log.warning(
                "Retry of job %s kept in memory only: the store refused it",
                job.handle.decode(errors="replace"),
            )
        else:
            # A foreground job that a background submission tried to make durable:
            # it stays what it was, for the clients still waiting on it.
            job.background = False
            if not job.clients:
                self._abandon(job)

    def adopt(
        self,
        handle: bytes,
        name: bytes,
        unique: bytes,
        data: bytes,
        priority: int,
        reducer: bytes,
        store_id: int,
        retries: int,
    ) -> Job:
        """Cluster mode: a job this server claimed from the shared store, for its workers."""
        f = self.table.function(name)
        job = Job(handle, f, unique, data, priority if priority in (0, 1, 2) else NORMAL, True)
        job.reducer = reducer
        job.store_id = store_id
        job.retries = retries
        self.table.add(job, index=False)
        self.queues.put(job)
        return job

    def disown(self, handle: bytes) -> bool:
        """Cluster mode: forget a claimed job no worker has started (the lease is gone)."""
        job = self.table.jobs.get(handle)
        if job is None or job.state is not QUEUED:
            return False
        self._remove(job)
        return True

    def restore(self, stored: Iterable[StoredJob]) -> int:
        """Load jobs the store kept, in submission order; returns the count.  A job
        kept with its handle gets it back."""
        count = 0
        for s in stored:
            job = Job(
                self.handles.restored(s.handle),
                self.table.function(s.function),
                s.unique,
                s.data,
                s.priority if s.priority in (0, 1, 2) else NORMAL,
                True,
            )
            job.when = float(s.when)
            job.store_id = s.id
            job.failures = s.failures
            job.outcomes = decode_outcomes(s.outcomes)
            job.retry = stored_retry(s.retry)
            job.created_at = self.clock()
            self.table.add(job, index=True)
            self.queues.put(job)
            count += 1
        self.stats.restored += count
        return count

    def resubmit(self, record: FailedJob) -> bool:
        """Run a failed job again under its old handle and unique key (a fresh set of
        attempts; earlier outcomes are kept).  False if its handle is in use."""
        if record.handle in self.table.jobs:
            return False
        job = Job(
            record.handle,
            self.table.function(record.function),
            record.unique,
            record.data,
            record.priority if record.priority in (0, 1, 2) else NORMAL,
            True,
        )
        job.outcomes = record.outcomes
        self.events.submitted(job)
        self.table.add(job, index=True)
        if self._kept(job, []):
            self.queues.put(job)
        return True

    # -- workers --------------------------------------------------------------

    def _wake(self, f: Function) -> None:
        """Send one NOOP to sleeping workers of ``f`` (``--worker-wakeup`` of them)."""
        self._wake_up_to(f, self.config.worker_wakeup or len(f.sleepers))

    def _wake_up_to(self, f: Function, count: int) -> int:
        """NOOP up to ``count`` of ``f``'s sleeping workers, oldest first; how many."""
        sleepers = f.sleepers
        woken = 0
        while woken < count and sleepers:
            peer = sleepers.popitem(last=False)[0]
            peer.unlisted[f] = None
            if peer.sleeping and not peer.noop_sent:
                self._noop(peer)
                woken += 1
            # else a stale entry: the worker woke since it was listed
        return woken

    def _noop(self, peer: Peer) -> None:
        """Wake a sleeping worker: one NOOP, none more until its next grab.  It stays
        listed as a sleeper of its other functions, stale until it sleeps again."""
        peer.noop_sent = True
        peer.send(NOOP)

    def drop_abilities(self, peer: Peer, name: bytes | None) -> None:
        """CANT_DO (one function), RESET_ABILITIES or disconnect (all): the worker's
        running jobs of those functions go back to the queue."""
        abilities = peer.abilities
        if name is None:
            dropped = list(abilities)
            peer.abilities = {}
            peer.unlisted.clear()
            peer.heaps = None
        else:
            f = self.table.functions.get(name)
            if f is None or abilities.pop(f, None) is None:
                return
            peer.unlisted.pop(f, None)
            dropped = [f]
        for f in dropped:
            del f.workers[peer]
            f.sleepers.pop(peer, None)
            self.queues.unregister(peer, f)
        if peer.jobs:
            for job in [j for j in peer.jobs if name is None or j.function in dropped]:
                self._attempt_failed(job, "worker_lost", "the worker left or dropped the function")
        for f in dropped:
            self.table.forget(f)

    def grab(self, peer: Peer, ptype: int) -> None:
        """GRAB_JOB, GRAB_JOB_UNIQ, GRAB_JOB_ALL."""
        peer.sleeping = False  # its entries in sleepers are stale now
        peer.noop_sent = False
        self.keeper.before_hand_out()  # no claim that may have lapsed is handed out
        job = self.queues.take(peer)
        if job is None:
            peer.send(NO_JOB)
            return
        job.state = RUNNING
        job.worker = peer
        job.started_at = self.clock()
        peer.jobs.add(job)
        f = job.function
        f.running += 1
        if peer.retry_extension:
            peer.send(attempt_packet(job, self.policy(job).attempts))
        if ptype == GRAB_JOB:
            peer.send(frame(RES, JOB_ASSIGN, (job.handle, f.name, job.data)))
        elif ptype == GRAB_JOB_ALL and job.reducer:
            peer.send(
                frame(RES, JOB_ASSIGN_ALL, (job.handle, f.name, job.unique, job.reducer, job.data))
            )
        else:  # GRAB_JOB_UNIQ, and GRAB_JOB_ALL without a reducer (as gearmand answers)
            peer.send(frame(RES, JOB_ASSIGN_UNIQ, (job.handle, f.name, job.unique, job.data)))
        entry = peer.abilities.get(f)
        timeout = entry[0] if entry is not None else 0
        seconds = timeout / 1000.0 if timeout > 0 else self.policies.for_function(f.name).timeout
        if seconds > 0 and self.call_later is not None:
            job.timer = self.call_later(seconds, lambda: self._timed_out(job))

    def _release(self, job: Job) -> None:
        """Undo the assignment of a running job to its worker."""
        job.function.running -= 1
        if job.worker is not None:
            job.worker.jobs.discard(job)
            job.worker = None
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None

    def _timed_out(self, job: Job) -> None:
        """CAN_DO_TIMEOUT expired: requeued if its policy retries timeouts, else the job
        fails, as the protocol text says; a background one goes to the failed set.

        gearmand always requeues it silently (and 1.1 could hang doing so)."""
        job.timer = None
        if job.state is not RUNNING:
            return
        log.info("Job %s timed out on its worker", job.handle.decode(errors="replace"))
        self.events.timed_out(job)
        self._attempt_failed(job, "timeout", "the worker's time ran out")

    # -- failed attempts ------------------------------------------------------

    def policy(self, job: Job) -> Policy:
        """The policy ``job`` is retried by (see :meth:`.policies.Policies.for_job`)."""
        return self.policies.for_job(job.function.name, job.function.retry, job.retry)

    def _attempt_failed(
        self,
        job: Job,
        kind: str,
        message: str,
        exception: bytes | list[bytes] = b"",
        detail: bytes = b"",
    ) -> None:
        """An attempt at a running job ended as ``kind``: retry it, queue it again,
        or fail it for good, as :func:`.retries.decide` says.  ``exception`` is the
        worker's WORK_EXCEPTION, for the clients that asked for exceptions;
        ``detail`` its data, for a kept result."""
        if kind == "worker_lost":
            self.events.worker_lost(job)
            job.retries += 1
        if job.ignored:  # cancelled or abandoned: nobody waits for another attempt
            self._finish(job)
            return
        note_attempt(job, kind, message, self.clock())
        policy = self.policy(job)
        decision = decide(
            policy, kind, job.failures, job.retries, job_retries=self.config.job_retries
        )
        if decision.next is Next.RETRY:
            self._retry(job, policy, decision.delay)
        elif decision.next is Next.REQUEUE:
            self._requeue(job)
        else:
            if decision.next is Next.DROP:
                log.log(
                    NOTICE,
                    "Dropped job due to max retry count: %s %s",
                    job.handle.decode(errors="replace"),
                    job.unique.decode(errors="replace"),
                )
                self.events.dropped(job)
            self._fail_clients(job, exception)
            self._keep_failed(job, policy, kind)
            self._ended(job, kind, detail)
            self._finish(job)

    def _retry(self, job: Job, policy: Policy, delay: float) -> None:
        """Another attempt after the policy's backoff.  A background retry is kept as
        a scheduled job under the same handle, so it survives a restart."""
        last = job.outcomes[-1]
        log.info(
            "Retrying job %s (%s) in %.1fs after attempt %d of %d: %s %s",
            job.handle.decode(errors="replace"),
            job.function.name.decode(errors="replace"),
            delay,
            job.failures,
            policy.attempts,
            last.kind,
            last.message,
        )
        self.events.retried(job)
        self._release(job)
        job.numerator = job.denominator = 0
        job.when = self.clock() + delay
        if self.keeper.retry(job):
            self._remove(job)  # it waits in the cluster, for any server's workers
            return
        self.queues.put(job)

    def _requeue(self, job: Job) -> None:
        """Its worker was lost: run it again now (``--job-retries`` allows it)."""
        self.events.requeued(job)
        self._release(job)
        job.numerator = job.denominator = 0
        if self.keeper.requeue(job):
            self._remove(job)  # back to the cluster, for any server's workers
            return
        self.queues.put(job)

    def _keep_failed(self, job: Job, policy: Policy, kind: str) -> None:
        """A job failed for good: log it, and keep it if it is a background job.

        ``kind`` is the last attempt's outcome, or a reason."""
        if not job.background or job.ignored:
            return
        record = failed_record(job, kind, self.clock())
        log.log(
            NOTICE,
            "Job failed for good: %s %s unique %r after %d attempt(s): %s",
            job.function.name.decode(errors="replace"),
            job.handle.decode(errors="replace"),
            job.unique.decode(errors="replace"),
            job.failures,
            record.reason,
        )
        if policy.keep_failed:
            self.failed.keep(job, record)

    # -- recurring schedules ----------------------------------------------------

    def _fire_schedule(self, schedule: Schedule, when: int) -> bytes | None:
        """A recurring schedule's minute came: an ordinary background job (its
        handle, if this server holds it)."""
        log.info("Schedule %s fires %s", schedule.name, schedule.function.decode(errors="replace"))
        if self.keeper.fire(schedule, when):  # once in the cluster, whoever comes first
            return None
        job = self.submit(
            self._internal,
            schedule.function,
            schedule.unique(when),
            schedule.data,
            schedule.priority,
            True,
        )
        return job.handle if job is not None else None

    # -- results --------------------------------------------------------------

    def _fail_clients(self, job: Job, exception: bytes | list[bytes] = b"") -> None:
        """Tell the waiting clients the job failed: WORK_FAIL with the handle alone
        (gearmand sends clients that did not ask for exceptions WORK_FAIL "H\\0", a
        stray NUL that Perl and Python clients reject), or the worker's
        ``exception`` to those that asked for exceptions."""
        if job.clients and not job.ignored:
            fail = HEADER.pack(RES, T.WORK_FAIL, len(job.handle)) + job.handle
            for client in job.clients:
                client.send(exception if exception and client.exceptions else fail)

    def _ended(self, job: Job, status: str, data: bytes) -> None:
        """The job is over: its result is kept if asked for (see .results)."""
        results = self.results
        if not job.ignored and (job.background or results.waited_for):
            keep = self.policies.for_function(job.function.name).keep_results
            results.ended(job, status, data, max(keep, job.keep_result))

    def _finish(self, job: Job) -> None:
        """The job is over (done, failed, timed out, dropped): forget it everywhere."""
        if job.state is RUNNING:
            self._release(job)
        self.keeper.forget(job)
        self._remove(job)

    def _remove(self, job: Job) -> None:
        """Drop a job that is not running from every index and counter."""
        self.queues.withdraw(job)
        job.state = DONE
        self.table.remove(job)
        if job.clients:
            for client in job.clients:
                if client.attached is not None:
                    client.attached.discard(job)
            job.clients = None
        if not self.table.jobs and self.on_idle is not None:
            self.on_idle()

    # -- requests (see .requests for each packet's arguments) -------------------

    def can_do(self, peer: Peer, name: bytes, timeout: int) -> None:
        """CAN_DO and CAN_DO_TIMEOUT (``timeout`` in ms, 0: none)."""
        if self.access is not None and not self.access.may("work", peer.identity, name):
            # No reply: CAN_DO has none, and an ERROR would be read by libgearman
            # workers as the answer to their next GRAB_JOB.
            self.refused(peer, "work", name)
            return
        f = self.table.function(name)
        # A repeated CAN_DO updates the registration rather than adding a second
        # one (gearmand adds one, listed twice, and each GRAB_JOB walks them all).
        self.queues.register(peer, f, timeout)
        f.workers[peer] = None
        if peer.sleeping and not peer.noop_sent:
            if f.available():
                # Asleep before it could do these jobs: nothing else would wake it
                # (gearmand does not; see docs/compatibility.md).
                self._noop(peer)
                peer.unlisted[f] = None
            else:
                f.sleepers[peer] = None
        elif peer not in f.sleepers:
            peer.unlisted[f] = None

    def pre_sleep(self, peer: Peer) -> None:
        if self.queues.has_work(peer):
            peer.send(NOOP)  # work arrived between NO_JOB and PRE_SLEEP
            return
        peer.sleeping = True
        if not peer.noop_sent and peer.unlisted:
            abilities = peer.abilities
            for f in peer.unlisted:
                if f in abilities:
                    f.sleepers[peer] = None
            peer.unlisted.clear()
        self.keeper.hungry()

    def owned(self, peer: Peer, handle: bytes) -> Job | None:
        """The running job of that handle, if ``peer`` is its worker."""
        job = self.table.jobs.get(handle)
        if job is None or job.worker is not peer:
            return None
        return job

    def progress(self, job: Job, numerator: int, denominator: int, args: tuple[bytes, ...]) -> None:
        """WORK_STATUS: remembered for GET_STATUS and forwarded to the clients."""
        job.numerator = numerator
        job.denominator = denominator
        self.forward(job, T.WORK_STATUS, args)

    def forward(self, job: Job, ptype: int, args: tuple[bytes, ...]) -> None:
        """Send the job's clients a worker's WORK_* packet."""
        clients = job.clients
        if clients and not job.ignored:
            packet = frame(RES, ptype, args)
            for client in clients:
                client.send(packet)

    def complete(self, job: Job, args: tuple[bytes, ...]) -> None:
        """WORK_COMPLETE."""
        self.events.completed(job)
        self.forward(job, WORK_COMPLETE, args)
        self._ended(job, "complete", args[1])
        self._finish(job)

    def fail(self, job: Job) -> None:
        """WORK_FAIL: retried if its policy says so, else final."""
        self.events.failed(job)
        self._attempt_failed(job, "fail", "")

    def exception(self, job: Job, args: tuple[bytes, ...]) -> None:
        """WORK_EXCEPTION: retried if its policy says so, else final."""
        self.events.exception(job)
        message = args[1][:1000].decode(errors="replace")
        packet = frame(RES, T.WORK_EXCEPTION, args)
        self._attempt_failed(job, "exception", message, packet, args[1])

    def status_of(self, peer: Peer, job: Job | None) -> Job | None:
        """The job whose status ``peer`` asked for, or None (answered as unknown) if
        there is none or the rules hide its status."""
        access = self.access
        if job is None or access is None or access.may("status", peer.identity, job.function.name):
            return job
        self.refused(peer, "status", job.function.name)
        return None

    # -- admin support ------------------------------------------------------------

    def cancel(self, handle: bytes) -> bool:
        """`cancel job`: a queued job is removed (gearmand only marks it); a running
        one is detached from its clients and its result dropped.  Its clients get
        WORK_FAIL and it leaves the store."""
        job = self.table.jobs.get(handle)
        if job is None or job.state is PENDING:
            return False
        self.events.cancelled(job)
        self._fail_clients(job)
        self._ended(job, "cancelled", b"")
        self.keeper.forget(job)
        job.store_id = 0
        if job.state is RUNNING:
            job.ignored = True
            self.table.unindex(job)
            return True
        self._remove(job)
        return True

    def retry_now(self, handle: bytes) -> bool:
        """A job waiting for its next attempt runs now (the console's "retry now")."""
        job = self.table.jobs.get(handle)
        if job is None or job.state is not SCHEDULED or not job.failures:
            return False
        log.info("Retrying job %s now on request", handle.decode(errors="replace"))
        self.queues.now(job)
        if self.keeper.retry(job):  # the store keeps it due now, as after a failed attempt
            self._remove(job)
        return True

    def drop_function(self, name: bytes) -> Dropped:
        """`drop function` (and the console's): see :meth:`.table.JobTable.drop`."""
        return self.table.drop(name)

    # -- paused functions ------------------------------------------------------------

    async def set_paused(self, name: bytes, paused: bool, who: str) -> bool:
        """`pause`/`resume` (and the console's): takes effect at once and is logged
        with ``who`` asked, then saved where pauses outlive a restart (raises what
        that store raises).  False if the function already was so."""
        changed = self.pauses.pause(name) if paused else self.pauses.resume(name)
        if changed:
            log.info(
                "Function %s %s by %s",
                name.decode(errors="replace"),
                "paused" if paused else "resumed",
                who,
            )
        f = self.table.functions.get(name)
        held = sum(f.queued) if f is not None and changed else 0  # the jobs it holds or frees
        action = "pause" if paused else "resume"
        # Logged above when it changed something; a pause that changed nothing is not worth a line.
        self.audit.record(who, action, name.decode(errors="replace"), held, logged=True)
        if self.pause_store is not None:
            await self.pause_store.save_paused(name, paused)
        return changed

    def _resumed(self, f: Function) -> None:
        """A paused function is resumed: wake a sleeping worker per queued job (all
        at once, not ``--worker-wakeup`` at a time: a backlog waits), and fetch
        its jobs if they are kept elsewhere."""
        self.queues.resumed(f)
        self._wake_up_to(f, f.queued[0] + f.queued[1] + f.queued[2])
        if f.sleepers:
            self.keeper.hungry()

    # -- access control -------------------------------------------------------------

    def apply_access(self, rules: AccessRules) -> None:
        """New access rules, for new requests: every peer is identified anew, and
        registrations the rules no longer allow are dropped (jobs already running
        there finish; nobody is disconnected)."""
        access = self.access = rules if rules.active else None
        self.handles.random = rules.restricts_status  # status is refused: handles unguessable
        for peer in self.peers:
            if access is None:
                peer.identity = ANONYMOUS
                continue
            peer.identity = access.identify(peer.host, peer.names)
            for f in [f for f in peer.abilities if not access.may("work", peer.identity, f.name)]:
                del peer.abilities[f]
                f.workers.pop(peer, None)
                f.sleepers.pop(peer, None)
                self.queues.unregister(peer, f)

    def refused(self, peer: Peer, kind: str, what: bytes) -> None:
        """Count and (rate-limited) log a request the rules refused."""
        self.stats.refused(kind)
        self.refusals.note(kind, peer.identity, peer.host, what)

    def shutdown(self, graceful: bool) -> None:
        if self.on_shutdown is not None:
            self.on_shutdown(graceful)
