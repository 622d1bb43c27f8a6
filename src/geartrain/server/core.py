"""The job server's rules, with no I/O.

Everything that decides which job a worker gets, when a job is created,
coalesced, retried, failed or dropped, and what each peer is told, lives in
this module.  It sees connections only as :class:`~.jobs.Peer` objects with a
``send(bytes)`` and a ``close()``; timers come from the ``call_later`` it is
given; the durable store is reached through a :class:`~.jobs.Persister`.  The I/O
layer (:mod:`.network`) feeds it decoded packets and admin lines.

Where gearmand 1.1 departs from the protocol text, this follows the text and
gearmand 2.0's fixes; each such place says so.
"""

from __future__ import annotations

import heapq
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..protocol import HEADER, PACKETS, REQ, RES, Packet, PacketType, frame, pack
from ..store import StoredJob
from .access import ANONYMOUS, AccessRules, RefusalLog
from .config import ServerConfig
from .failures import FailedJob, FailedJobs, failed_record, note_attempt
from .failures import decode_outcomes as _decode_outcomes
from .jobs import ClusterHooks, Function, Job, JobState, Observer, Peer, Persister, Priority, Stats
from .limits import LimitEpisode
from .logs import NOTICE
from .policies import Policies, Policy
from .replies import (
    ERR_ARGS,
    ERR_COMMAND,
    ERR_HANDLE_SIZE,
    ERR_MAGIC,
    ERR_NO_JOB_DATA,
    ERR_NO_JOB_EXCEPTION,
    ERR_NO_JOB_RESULT,
    ERR_OPTION,
    ERR_PERMISSION,
    ERR_QUEUE_FULL,
    ERR_UNIQUE,
    MAX_NUMBER,
    NO_JOB,
    NOOP,
    c_atoi,
    c_strtol,
    error_packet,
)
from .reply_order import owe, pay
from .schedules import Recurring, Schedule, sched_fields
from .settings import Settings

__all__ = ["JobServer"]

log = logging.getLogger("geartrain.server")

T = PacketType
PENDING, SCHEDULED, QUEUED, RUNNING, DONE = (
    JobState.PENDING,
    JobState.SCHEDULED,
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.DONE,
)
HIGH, NORMAL, LOW = Priority.HIGH, Priority.NORMAL, Priority.LOW

MAX_UNIQUE = 64  # PROTOCOL: unique IDs are at most 64 bytes
MAX_HANDLE = 64  # gearmand's GEARMAND_JOB_HANDLE_SIZE, NUL included
MAX_CLIENT_ID = 127  # gearmand truncates SET_CLIENT_ID to this
MAX_OPTION = 63
MAX_TIMEOUT_DIGITS = 20  # gearmand closes on a longer CAN_DO_TIMEOUT argument
MIN_TIMEOUT = 1000  # gearmand raises shorter CAN_DO_TIMEOUTs to a second (connection.cc)
MAX_DENOMINATOR = 11  # gearmand closes on a longer WORK_STATUS denominator (server.cc)

# SUBMIT_* packet -> (priority, background)
SUBMIT_KINDS: dict[int, tuple[Priority, bool]] = {
    T.SUBMIT_JOB: (NORMAL, False),
    T.SUBMIT_JOB_BG: (NORMAL, True),
    T.SUBMIT_JOB_HIGH: (HIGH, False),
    T.SUBMIT_JOB_HIGH_BG: (HIGH, True),
    T.SUBMIT_JOB_LOW: (LOW, False),
    T.SUBMIT_JOB_LOW_BG: (LOW, True),
}
_ARGC = {t: len(spec.args) for t, spec in PACKETS.items()}


class JobServer:
    """All jobs, functions and peers of one server, and the rules over them."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or ServerConfig()
        self.call_later = call_later
        self.clock = clock
        self.persister: Persister | None = None
        # Cluster mode: background jobs live in the shared store (the persister).
        self.cluster: ClusterHooks | None = None
        self.observer: Observer | None = None  # the console's metrics, when it runs
        self.functions: dict[bytes, Function] = {}
        self.jobs: dict[bytes, Job] = {}
        self.peers: dict[Peer, None] = {}  # in connection order, for `workers`
        # Functions with queued jobs: a grabbing worker with many functions looks
        # only at these, so its GRAB_JOB costs what is queued, not what it registered.
        self.ready: dict[Function, None] = {}
        self._rank = 0  # registration ranks, see Peer.abilities
        self.job_bytes = 0  # data held by all jobs, for max_job_bytes
        self._limit_queue = LimitEpisode(
            "Job limit reached (%d jobs, %d bytes held): refusing submissions"
        )
        self._limit_function = LimitEpisode(
            "Job limit of function %s reached (%d jobs, %d bytes held): refusing submissions"
        )
        self.handle_prefix = self.config.handle_prefix.encode() + b":"
        self.handle_count = 0
        self.stats = Stats()
        self.next_store_id = 1
        self.on_idle: Callable[[], None] | None = None  # called when the last job leaves
        self.on_shutdown: Callable[[bool], None] | None = None  # set by the app
        # Access rules (see .access); None when there are none: nothing is checked.
        self.access: AccessRules | None = None
        self.random_handles = False
        self._entropy = b""
        self._entropy_at = 0
        self.refusals = RefusalLog()
        self._epoch_heap: list[tuple[float, int, Job]] = []
        self._epoch_timer: Any = None
        self._epoch_seq = 0
        self.handlers: list[Callable[[Peer, tuple[bytes, ...]], None] | None] = [None] * 64
        for ptype, name in _HANDLER_NAMES.items():
            self.handlers[ptype] = getattr(self, name)
        for ptype, (priority, background) in SUBMIT_KINDS.items():
            self.handlers[ptype] = self._submit_handler(priority, background)
        self.policies = Policies()
        self.failed = FailedJobs(self)
        self.recurring = Recurring(self._fire_schedule, call_later, clock)
        self.stale_store_ids: list[int] = []  # older copies of restored retries, to delete
        self._internal = Peer(lambda data: None, lambda: None, "geartrain")

    def apply_settings(self, settings: Settings) -> None:
        """Take a (re)loaded settings file: policies, failed-set bounds, schedules."""
        self.policies = settings.policies
        self.failed.max_jobs = settings.failed_max_jobs
        self.failed.max_age = settings.failed_max_age
        self.failed.expire()
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
        self._drop_abilities(peer, None)
        if peer.attached:
            for job in peer.attached:
                self._detach(job, peer)
            peer.attached = None

    def packet(self, peer: Peer, packet: Packet) -> None:
        """Handle one binary packet from ``peer``."""
        if packet.magic != REQ:
            peer.send(ERR_MAGIC)
            return
        handler = self.handlers[packet.type]
        if handler is None:
            peer.send(ERR_COMMAND)
            return
        args = packet.args
        if len(args) != _ARGC[packet.type]:
            peer.send(ERR_ARGS)
            return
        handler(peer, args)

    # -- submission ---------------------------------------------------------

    def _submit_handler(
        self, priority: Priority, background: bool
    ) -> Callable[[Peer, tuple[bytes, ...]], None]:
        submit = self.submit

        def handler(peer: Peer, args: tuple[bytes, ...]) -> None:
            submit(peer, args[0], args[1], args[2], priority, background)

        return handler

    def function(self, name: bytes) -> Function:
        f = self.functions.get(name)
        if f is None:
            f = self.functions[name] = Function(name)
        return f

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
        if len(unique) > MAX_UNIQUE:
            peer.send(ERR_UNIQUE)
            return None
        access = self.access
        if access is not None and not access.may("submit", peer.identity, name):
            self.refused(peer, "submit", name)
            peer.send(ERR_PERMISSION)
            return None
        f = self.functions.get(name) or self.function(name)
        # A shared job coalesces in the cluster's store, not here.
        index = bool(unique) and not (background and self.cluster is not None)
        if index:
            existing = self._find_unique(f, unique, data)
            if existing is not None:
                if access is None or access.joins(existing.owner, peer.identity):
                    self.stats.coalesced += 1
                    self._coalesce(existing, peer, background)
                    return existing
                # Another identity's job: this one runs on its own and the key
                # stays with the first, so nobody joins a stranger's job.
                index = False
        if self._queue_full(f, priority, len(data)):
            peer.send(ERR_QUEUE_FULL)
            return None
        self.stats.created += 1
        job = Job(self._new_handle(), f, unique, data, priority, background)
        job.when = when
        job.reducer = reducer
        job.created_at = self.clock()
        if access is not None:
            job.owner = peer.identity
        self.jobs[job.handle] = job
        self.job_bytes += len(data)
        f.data_bytes += len(data)
        if self.observer is not None:
            self.observer.event(job, "submitted")
        f.total += 1
        if index:
            _index_unique(f, job)
        if not background:
            self._attach(job, peer)
        if background and self.persister is not None and not self._stored_now(job, peer):
            return job
        peer.send(HEADER.pack(RES, T.JOB_CREATED, len(job.handle)) + job.handle)
        self._enqueue(job)
        return job

    def _stored_now(self, job: Job, peer: Peer) -> bool:
        """Make a new background job durable: True if the store took it at once (a
        log append); else it waits, unacknowledged, for the store's ``stored``."""
        assert self.persister is not None
        job.store_id = self._take_store_id()
        if self.persister.store_now(job):
            return True
        job.state = PENDING
        job.waiters = [peer]
        owe(peer, job)
        self.persister.add(job)
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
        if (config.max_jobs and len(self.jobs) >= config.max_jobs) or (
            config.max_job_bytes and self.job_bytes + size > config.max_job_bytes
        ):
            self.stats.limit_queue += 1
            self._limit_queue.reached(len(self.jobs), self.job_bytes)
            return True
        return False

    def _find_unique(self, f: Function, unique: bytes, data: bytes) -> Job | None:
        if unique == b"-":
            # "-" coalesces jobs with identical data; no data never coalesces.
            return f.by_data.get(data) if data else None
        return f.uniques.get(unique)

    def _coalesce(self, job: Job, peer: Peer, background: bool) -> None:
        """A submission matched an existing job: answer with its handle."""
        if not background:
            self._attach(job, peer)
        elif not job.background:
            # gearmand leaves the job foreground, so it is dropped when its clients
            # leave although this submitter was told it exists; keep it instead,
            # and make it durable like any background job.
            job.background = True
            if self.persister is not None:
                job.store_id = self._take_store_id()
                job.waiters = job.waiters or []
                self.persister.add(job)
        if job.waiters is not None:
            # A store write for this job is in flight: acknowledge after it.
            job.waiters.append(peer)
            owe(peer, job)
        else:
            peer.send(HEADER.pack(RES, T.JOB_CREATED, len(job.handle)) + job.handle)

    def _new_handle(self) -> bytes:
        self.handle_count += 1
        handle = self.handle_prefix + str(self.handle_count).encode()
        if self.random_handles:
            # Some status queries are refused: a handle must not be guessable.
            # 64 random bits, from a 4 KiB draw of the OS's CSPRNG (one system
            # call per 512 handles rather than one each).
            at = self._entropy_at
            if at + 8 > len(self._entropy):
                self._entropy, at = os.urandom(4096), 0
            self._entropy_at = at + 8
            handle += b"-" + self._entropy[at : at + 8].hex().encode()
        return handle

    def _take_store_id(self) -> int:
        self.next_store_id += 1
        return self.next_store_id - 1

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
            self._unindex_unique(job)
        elif job.state is not DONE:
            self._remove(job)

    # -- stored jobs ----------------------------------------------------------

    def stored(self, job: Job) -> None:
        """The store committed ``job``: acknowledge it and let workers have it."""
        waiters, job.waiters = job.waiters, None
        created = HEADER.pack(RES, T.JOB_CREATED, len(job.handle)) + job.handle
        for peer in waiters or ():
            if not peer.closed:
                pay(peer, job, created)
        # A job made durable by a later background submission may already be
        # queued, running or even finished (its done() then follows this add).
        if job.state is PENDING:
            self._enqueue(job)

    def shared(self, job: Job, handle: bytes) -> None:
        """Cluster mode: the shared store committed ``job`` (or coalesced it into the
        job ``handle``).  Acknowledge it; any server of the cluster may run it now."""
        waiters, job.waiters = job.waiters, None
        self._remove(job)
        created = HEADER.pack(RES, T.JOB_CREATED, len(handle)) + handle
        for peer in waiters or ():
            if not peer.closed:
                pay(peer, job, created)

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
        f = self.function(name)
        job = Job(handle, f, unique, data, priority if priority in (0, 1, 2) else NORMAL, True)
        job.reducer = reducer
        job.store_id = store_id
        job.retries = retries
        self.jobs[handle] = job
        self.job_bytes += len(data)  # as every job: _remove takes it off again
        f.data_bytes += len(data)
        f.total += 1
        self._enqueue(job)
        return job

    def disown(self, handle: bytes) -> bool:
        """Cluster mode: forget a claimed job no worker has started (the lease is gone)."""
        job = self.jobs.get(handle)
        if job is None or job.state is not QUEUED:
            return False
        self._remove(job)
        return True

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
        elif job.attempts and job.background:
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

    def restore(self, stored: Iterable[StoredJob]) -> int:
        """Load jobs from the store at start, in submission order; returns the count.

        A job kept with its handle gets it back; of two copies of one handle (a
        crash between writing a retry and deleting its previous copy) the later
        one wins and the earlier one is left in ``stale_store_ids``."""
        latest: dict[bytes, StoredJob] = {}
        records: list[StoredJob] = []
        for s in stored:
            if s.handle:
                previous = latest.get(s.handle)
                if previous is not None:
                    self.stale_store_ids.append(previous.id)
                latest[s.handle] = s
            records.append(s)
        count = 0
        for s in records:
            if s.handle and latest[s.handle] is not s:
                continue
            job = Job(
                self._restored_handle(s.handle),
                self.function(s.function),
                s.unique,
                s.data,
                s.priority if s.priority in (0, 1, 2) else NORMAL,
                True,
            )
            job.when = float(s.when)
            job.store_id = s.id
            job.attempts = s.attempts
            job.outcomes = _decode_outcomes(s.outcomes)
            job.created_at = self.clock()
            self.next_store_id = max(self.next_store_id, s.id + 1)
            self._index(job)
            self._enqueue(job)
            count += 1
        self.stats.restored += count
        return count

    def _restored_handle(self, handle: bytes) -> bytes:
        """A kept handle (new numbers then go past it), or a new one."""
        if not handle:
            return self._new_handle()
        self.saw_handle(handle)
        return handle

    def saw_handle(self, handle: bytes) -> None:
        """A handle of ours from the store: never hand out its number again."""
        if handle.startswith(self.handle_prefix):
            tail = handle[len(self.handle_prefix) :].split(b"-", 1)[0]  # random suffix
            if tail.isdigit():
                self.handle_count = max(self.handle_count, int(tail))

    def _index(self, job: Job) -> None:
        """Make a job that did not come from a submission known (restored, retried)."""
        f = job.function
        self.jobs[job.handle] = job
        self.job_bytes += len(job.data)
        f.data_bytes += len(job.data)
        f.total += 1
        if job.unique and self._find_unique(f, job.unique, job.data) is None:
            _index_unique(f, job)

    def resubmit(self, record: FailedJob) -> bool:
        """Run a failed job again under its old handle and unique key (a fresh set of
        attempts; earlier outcomes are kept).  False if its handle is in use."""
        if record.handle in self.jobs:
            return False
        job = Job(
            record.handle,
            self.function(record.function),
            record.unique,
            record.data,
            record.priority if record.priority in (0, 1, 2) else NORMAL,
            True,
        )
        job.outcomes = record.outcomes
        self.stats.created += 1
        self._index(job)
        if self.persister is not None:
            job.state = PENDING
            job.store_id = self._take_store_id()
            job.waiters = []
            self.persister.add(job)
        else:
            self._enqueue(job)
        return True

    # -- queues ---------------------------------------------------------------

    def _enqueue(self, job: Job) -> None:
        """Make the job available to workers (or schedule it if its time is ahead)."""
        if job.when and job.when > self.clock():
            job.state = SCHEDULED
            job.function.scheduled += 1
            self._schedule_epoch(job)
            return
        job.state = QUEUED
        f = job.function
        queues = f.queues or f.make_queues()
        queues[job.priority].append(job)
        f.queued[job.priority] += 1
        self.ready[f] = None
        if f.sleepers:
            self._wake(f)

    def _wake(self, f: Function) -> None:
        """Send one NOOP to sleeping workers of ``f`` (``--worker-wakeup`` of them)."""
        limit = self.config.worker_wakeup or len(f.sleepers)
        sleepers = f.sleepers
        while limit and sleepers:
            self._noop(next(iter(sleepers)))
            limit -= 1

    def _noop(self, peer: Peer) -> None:
        """Wake a sleeping worker: one NOOP, none more until its next grab."""
        peer.noop_sent = True
        for f in peer.abilities:
            f.sleepers.pop(peer, None)
        peer.send(NOOP)

    def _schedule_epoch(self, job: Job) -> None:
        self._epoch_seq += 1
        heapq.heappush(self._epoch_heap, (job.when, self._epoch_seq, job))
        if self._epoch_heap[0][2] is job:
            self._arm_epoch_timer()

    def _arm_epoch_timer(self) -> None:
        if self._epoch_timer is not None:
            self._epoch_timer.cancel()
            self._epoch_timer = None
        if self._epoch_heap and self.call_later is not None:
            delay = max(0.0, self._epoch_heap[0][0] - self.clock())
            self._epoch_timer = self.call_later(delay, self._epoch_due)

    def _epoch_due(self) -> None:
        """Queue every epoch job whose time has come (gearmand 2.0 wakes workers here)."""
        self._epoch_timer = None
        now = self.clock()
        heap = self._epoch_heap
        while heap and heap[0][0] <= now:
            job = heapq.heappop(heap)[2]
            if job.state is SCHEDULED:
                job.function.scheduled -= 1
                job.when = 0.0
                self._enqueue(job)
        self._arm_epoch_timer()

    def _take(self, peer: Peer) -> Job | None:
        """Pick the job for a grabbing worker: highest priority first across all its
        functions (gearmand 2.0; 1.1 looked at one function at a time), FIFO within
        a priority, the most recently registered function first (rotated with
        --round-robin)."""
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
                if f.queued[priority]:
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
        if self.config.round_robin:
            self._rank += 1
            peer.abilities[f] = (peer.abilities[f][0], -self._rank)
        return job

    def _has_work(self, peer: Peer) -> bool:
        abilities = peer.abilities
        if len(abilities) <= len(self.ready):
            return any(f.has_queued() for f in abilities)
        return any(f in abilities for f in self.ready)

    # -- workers --------------------------------------------------------------

    def _can_do(self, peer: Peer, name: bytes, timeout: int) -> None:
        if self.access is not None and not self.access.may("work", peer.identity, name):
            # No reply: CAN_DO has none, and an ERROR would be read by libgearman
            # workers as the answer to their next GRAB_JOB.
            self.refused(peer, "work", name)
            return
        f = self.function(name)
        # A repeated CAN_DO updates the registration rather than adding a second
        # one (gearmand adds one, listed twice, and each GRAB_JOB walks them all).
        self._rank += 1
        peer.abilities[f] = (timeout, self._rank)
        f.workers[peer] = None
        if peer.sleeping and not peer.noop_sent:
            if f.has_queued():
                # Asleep before it could do these jobs: nothing else would wake it
                # (gearmand does not; see docs/compatibility.md).
                self._noop(peer)
            else:
                f.sleepers[peer] = None

    def _drop_abilities(self, peer: Peer, name: bytes | None) -> None:
        """CANT_DO (one function), RESET_ABILITIES or disconnect (all): the worker's
        running jobs of those functions go back to the queue."""
        abilities = peer.abilities
        if name is None:
            dropped = list(abilities)
            peer.abilities = {}
        else:
            f = self.functions.get(name)
            if f is None or abilities.pop(f, None) is None:
                return
            dropped = [f]
        for f in dropped:
            del f.workers[peer]
            f.sleepers.pop(peer, None)
        if peer.jobs:
            for job in [j for j in peer.jobs if name is None or j.function in dropped]:
                self._requeue(job)
        for f in dropped:
            self._forget(f)

    def _forget(self, f: Function) -> None:
        """Drop a function nothing refers to, once more than max_idle_functions
        are known (up to that many stay listed in `status`, as gearmand lists all)."""
        functions = self.functions
        crowded = len(functions) > self.config.max_idle_functions
        if crowded and f.unused() and functions.get(f.name) is f:
            del functions[f.name]

    def _requeue(self, job: Job) -> None:
        """The worker lost the job; run it again unless its policy or --job-retries says no."""
        job.retries += 1
        limit = self.config.job_retries
        if job.ignored:
            self._finish(job)
            return
        policy = self._attempt_failed(job, "worker_lost", "the worker left or dropped the function")
        if policy.retries("worker_lost"):
            if not self._retry(job, policy):
                self._fail_clients(job)
                self._keep_failed(job, policy, "worker_lost")
                self._finish(job)
            return
        # gearmand 2.0: -1 retries without limit, 0 never retries, N allows N attempts.
        if limit == 0 or (limit > 0 and job.retries >= limit):
            log.log(
                NOTICE,
                "Dropped job due to max retry count: %s %s",
                job.handle.decode(errors="replace"),
                job.unique.decode(errors="replace"),
            )
            self.stats.dropped += 1
            self._fail_clients(job)
            self._keep_failed(job, policy, "worker_lost")
            self._finish(job)
            return
        self.stats.requeued += 1
        if self.observer is not None:
            self.observer.event(job, "requeued")
        self._release(job)
        job.numerator = job.denominator = 0
        if self.cluster is not None and job.store_id:
            self._remove(job)  # back to the cluster, for any server's workers
            self.cluster.release(job)
            return
        self._enqueue(job)

    def _release(self, job: Job) -> None:
        """Undo the assignment of a running job to its worker."""
        job.function.running -= 1
        if job.worker is not None:
            job.worker.jobs.discard(job)
            job.worker = None
        self._cancel_timer(job)

    def _assign(self, peer: Peer, ptype: int) -> None:
        """GRAB_JOB, GRAB_JOB_UNIQ, GRAB_JOB_ALL."""
        if peer.sleeping:
            if not peer.noop_sent:
                for f in peer.abilities:
                    f.sleepers.pop(peer, None)
            peer.sleeping = False
        peer.noop_sent = False
        if self.cluster is not None:
            self.cluster.before_hand_out()  # no claim that may have lapsed is handed out
        job = self._take(peer)
        if job is None:
            peer.send(NO_JOB)
            return
        job.state = RUNNING
        job.worker = peer
        job.started_at = self.clock()
        peer.jobs.add(job)
        f = job.function
        f.running += 1
        if ptype == T.GRAB_JOB:
            peer.send(frame(RES, T.JOB_ASSIGN, (job.handle, f.name, job.data)))
        elif ptype == T.GRAB_JOB_ALL and job.reducer:
            peer.send(
                frame(
                    RES, T.JOB_ASSIGN_ALL, (job.handle, f.name, job.unique, job.reducer, job.data)
                )
            )
        else:  # GRAB_JOB_UNIQ, and GRAB_JOB_ALL without a reducer (as gearmand answers)
            peer.send(frame(RES, T.JOB_ASSIGN_UNIQ, (job.handle, f.name, job.unique, job.data)))
        entry = peer.abilities.get(f)
        timeout = entry[0] if entry is not None else 0
        seconds = timeout / 1000.0 if timeout > 0 else self.policies.for_function(f.name).timeout
        if seconds > 0 and self.call_later is not None:
            job.timer = self.call_later(seconds, lambda: self._timed_out(job))

    def _timed_out(self, job: Job) -> None:
        """CAN_DO_TIMEOUT expired: requeued if its policy retries timeouts, else the job
        fails, as the protocol text says; a background one goes to the failed set.

        gearmand always requeues it silently (and 1.1 could hang doing so)."""
        job.timer = None
        if job.state is not RUNNING:
            return
        log.info("Job %s timed out on its worker", job.handle.decode(errors="replace"))
        self.stats.timed_out += 1
        if self.observer is not None:
            self.observer.event(job, "timed_out")
        policy = self._attempt_failed(job, "timeout", "the worker's time ran out")
        if job.ignored or not self._retry(job, policy):
            self._fail_clients(job)
            self._keep_failed(job, policy, "timeout")
            self._finish(job)

    # -- failed attempts ------------------------------------------------------

    def _attempt_failed(self, job: Job, kind: str, message: str) -> Policy:
        """Note how this attempt ended; returns the job's policy."""
        note_attempt(job, kind, message, self.clock())
        return self.policies.for_function(job.function.name)

    def _retry(self, job: Job, policy: Policy) -> bool:
        """Schedule another attempt after the policy's backoff, if the policy allows one.

        WORK_FAIL and WORK_EXCEPTION of a foreground job are final: its client is
        waiting and is told.  A background retry is written to the store as a
        scheduled job under the same handle, so it survives a restart."""
        last = job.outcomes[-1]
        kind = last.kind
        if not policy.retries(kind) or job.attempts >= policy.attempts or job.ignored:
            return False
        if not job.background and kind in ("fail", "exception"):
            return False
        delay = policy.delay(job.attempts)
        log.info(
            "Retrying job %s (%s) in %.1fs after attempt %d of %d: %s %s",
            job.handle.decode(errors="replace"),
            job.function.name.decode(errors="replace"),
            delay,
            job.attempts,
            policy.attempts,
            kind,
            last.message,
        )
        self.stats.retried += 1
        self._release(job)
        job.numerator = job.denominator = 0
        job.when = self.clock() + delay
        if self.cluster is not None and job.store_id:
            self._remove(job)  # it waits in the cluster, for any server's workers
            self.cluster.release(job)
            return True
        if job.background and self.persister is not None:
            previous, job.store_id = job.store_id, self._take_store_id()
            self.persister.add(job)
            if previous:
                self.persister.done(previous)
        self._enqueue(job)
        return True

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
            job.attempts,
            record.reason,
        )
        if not policy.keep_failed:
            return
        if self.cluster is not None and job.store_id:
            self.cluster.keep_failed(job, record)
        else:
            self.failed.add(record)

    # -- recurring schedules ----------------------------------------------------

    def _fire_schedule(self, schedule: Schedule, when: int) -> None:
        """A recurring schedule's minute came: an ordinary background job."""
        log.info("Schedule %s fires %s", schedule.name, schedule.function.decode(errors="replace"))
        if self.cluster is not None:
            self.cluster.fire(schedule, when)  # once in the cluster, whoever comes first
            return
        self.submit(
            self._internal,
            schedule.function,
            schedule.unique(when),
            schedule.data,
            schedule.priority,
            True,
        )

    def _cancel_timer(self, job: Job) -> None:
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None

    # -- results --------------------------------------------------------------

    def _owned(self, peer: Peer, handle: bytes) -> Job | None:
        job = self.jobs.get(handle)
        if job is None or job.worker is not peer:
            return None
        return job

    def _forward(self, job: Job, ptype: int, args: tuple[bytes, ...]) -> None:
        clients = job.clients
        if clients and not job.ignored:
            packet = frame(RES, ptype, args)
            for client in clients:
                client.send(packet)

    def _fail_clients(self, job: Job) -> None:
        """Server-made WORK_FAIL: the handle alone, no trailing NUL."""
        if job.clients and not job.ignored:
            packet = HEADER.pack(RES, T.WORK_FAIL, len(job.handle)) + job.handle
            for client in job.clients:
                client.send(packet)

    def _finish(self, job: Job) -> None:
        """The job is over (done, failed, timed out, dropped): forget it everywhere."""
        if job.state is RUNNING:
            self._release(job)
        if job.store_id and self.persister is not None:
            self.persister.done(job.store_id)
        self._remove(job)

    def _remove(self, job: Job) -> None:
        """Drop a job that is not running from every index and counter."""
        f = job.function
        state = job.state
        if state is QUEUED:
            f.queued[job.priority] -= 1  # its queue entry is skipped when reached
            if not f.has_queued():
                del self.ready[f]
        elif state is SCHEDULED:
            f.scheduled -= 1
        job.state = DONE
        f.total -= 1
        self.job_bytes -= len(job.data)
        f.data_bytes -= len(job.data)
        self.jobs.pop(job.handle, None)
        self._unindex_unique(job)
        if job.clients:
            for client in job.clients:
                if client.attached is not None:
                    client.attached.discard(job)
            job.clients = None
        if not f.total and len(self.functions) > self.config.max_idle_functions:
            self._forget(f)
        if not self.jobs and self.on_idle is not None:
            self.on_idle()

    def _unindex_unique(self, job: Job) -> None:
        if not job.unique:
            return
        index = job.function.by_data if job.unique == b"-" else job.function.uniques
        key = job.data if job.unique == b"-" else job.unique
        if index.get(key) is job:
            del index[key]

    # -- packet handlers --------------------------------------------------------

    def _h_can_do(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self._can_do(peer, args[0], 0)

    def _h_can_do_timeout(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        raw = args[1]
        timeout = c_strtol(raw) if len(raw) <= MAX_TIMEOUT_DIGITS else None
        if timeout is None:  # gearmand closes on an overlong number or strtol overflow
            peer.close()
            return
        # gearmand's floor: Node libraries send seconds ("2"), meaning no 2 ms.
        self._can_do(peer, args[0], max(timeout, MIN_TIMEOUT) if timeout > 0 else 0)

    def _h_cant_do(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self._drop_abilities(peer, args[0])

    def _h_reset_abilities(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self._drop_abilities(peer, None)

    def _h_pre_sleep(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        if self._has_work(peer):
            peer.send(NOOP)  # work arrived between NO_JOB and PRE_SLEEP
            return
        peer.sleeping = True
        if not peer.noop_sent:
            for f in peer.abilities:
                f.sleepers[peer] = None
        if self.cluster is not None:
            self.cluster.hungry()

    def _h_grab_job(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self._assign(peer, T.GRAB_JOB)

    def _h_grab_job_uniq(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self._assign(peer, T.GRAB_JOB_UNIQ)

    def _h_grab_job_all(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self._assign(peer, T.GRAB_JOB_ALL)

    def _h_work_status(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = self._owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_RESULT)
            return
        # gearmand closes on a denominator too long for a uint32; geartrain also
        # on an overlong numerator (gearmand reads any length: reading megabytes
        # of digits would hold up every other peer).
        if len(args[1]) > MAX_NUMBER or len(args[2]) > MAX_DENOMINATOR:
            peer.close()
            return
        job.numerator = c_atoi(args[1]) & 0xFFFFFFFF
        job.denominator = c_atoi(args[2]) & 0xFFFFFFFF
        self._forward(job, T.WORK_STATUS, args)

    def _h_work_data(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = self._owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_DATA)
            return
        self._forward(job, T.WORK_DATA, args)

    def _h_work_warning(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = self._owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_DATA)
            return
        self._forward(job, T.WORK_WARNING, args)

    def _h_work_complete(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = self._owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_RESULT)
            return
        self.stats.completed += 1
        if self.observer is not None:
            self.observer.event(job, "completed")
        self._forward(job, T.WORK_COMPLETE, args)
        self._finish(job)

    def _h_work_fail(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        if len(args[0]) >= MAX_HANDLE:
            peer.send(ERR_HANDLE_SIZE)
            return
        job = self._owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_RESULT)
            return
        self.stats.failed += 1
        if self.observer is not None:
            self.observer.event(job, "failed")
        policy = self._attempt_failed(job, "fail", "")
        if self._retry(job, policy):
            return
        self._forward(job, T.WORK_FAIL, args)
        self._keep_failed(job, policy, "fail")
        self._finish(job)

    def _h_work_exception(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = self._owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_EXCEPTION)
            return
        self.stats.exceptions += 1
        if self.observer is not None:
            self.observer.event(job, "exception")
        message = args[1][:1000].decode(errors="replace")
        policy = self._attempt_failed(job, "exception", message)
        if self._retry(job, policy):
            return
        self._keep_failed(job, policy, "exception")
        if job.clients and not job.ignored:
            exception = frame(RES, T.WORK_EXCEPTION, args)
            # gearmand sends these clients WORK_FAIL "H\0" (a stray NUL that Perl
            # and Python clients reject); the handle alone is what PROTOCOL means.
            fail = HEADER.pack(RES, T.WORK_FAIL, len(job.handle)) + job.handle
            for client in job.clients:
                client.send(exception if client.exceptions else fail)
        self._finish(job)

    def _h_get_status(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        handle = args[0][: MAX_HANDLE - 1]
        job = self.jobs.get(handle)
        if job is None and self.cluster is not None and self.cluster.status(peer, handle):
            return
        job = self._status_job(peer, job)
        if job is None or job.state is PENDING:
            reply = (handle, b"0", b"0", b"0", b"0")
        else:
            reply = (
                handle,
                b"1",
                b"1" if job.state is RUNNING else b"0",
                str(job.numerator).encode(),
                str(job.denominator).encode(),
            )
        peer.send(pack(RES, T.STATUS_RES, reply))

    def _h_get_status_unique(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        unique = args[0][: MAX_UNIQUE - 1]
        job = None
        for f in self.functions.values():
            job = f.uniques.get(unique)
            if job is not None and job.state is not PENDING:
                break
            job = None
        if job is None and self.cluster is not None and self.cluster.status_unique(peer, unique):
            return
        job = self._status_job(peer, job)
        if job is None:
            reply = (unique, b"0", b"0", b"0", b"0", b"0")
        else:
            reply = (
                unique,
                b"1",
                b"1" if job.state is RUNNING else b"0",
                str(job.numerator).encode(),
                str(job.denominator).encode(),
                str(len(job.clients or ())).encode(),
            )
        peer.send(pack(RES, T.STATUS_RES_UNIQUE, reply))

    def _status_job(self, peer: Peer, job: Job | None) -> Job | None:
        """The job, or None (answered as unknown) if the rules hide its status."""
        access = self.access
        if job is None or access is None or access.may("status", peer.identity, job.function.name):
            return job
        self.refused(peer, "status", job.function.name)
        return None

    def _h_echo_req(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        peer.send(frame(RES, T.ECHO_RES, args))

    def _h_set_client_id(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        peer.client_id = args[0][:MAX_CLIENT_ID] or b"-"

    def _h_option_req(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        option = args[0]
        if len(option) > MAX_OPTION or option.lower() != b"exceptions":
            peer.send(ERR_OPTION)
            return
        peer.exceptions = True
        peer.send(pack(RES, T.OPTION_RES, args))

    def _h_submit_job_epoch(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        when = c_strtol(args[2])
        if when is None:  # strtoll overflow (or an overlong number): gearmand closes
            peer.close()
            return
        self.submit(peer, args[0], args[1], args[3], NORMAL, True, when=max(0, when))

    def _h_submit_reduce_job(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.submit(peer, args[0], args[1], args[4], NORMAL, False, reducer=args[2])

    def _h_submit_reduce_job_background(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.submit(peer, args[0], args[1], args[4], NORMAL, True, reducer=args[2])

    def _h_submit_job_sched(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        """A background job at the next minute that matches (gearmand never implemented
        it); a minute that matches now runs at once."""
        try:
            when = sched_fields(args[2], args[3], args[4], args[5], args[6]).next_after(
                self.clock() - 60
            )
        except ValueError as error:
            peer.send(error_packet(b"INVALID_ARGUMENTS", str(error).encode()))
            return
        if when is None:
            peer.send(error_packet(b"INVALID_ARGUMENTS", b"No time matches these fields"))
            return
        self.submit(peer, args[0], args[1], args[7], NORMAL, True, when=when)

    # -- admin support ------------------------------------------------------------

    def cancel(self, handle: bytes) -> bool:
        """`cancel job`: a queued job is removed (gearmand only marks it); a running
        one is detached from its clients and its result dropped.  Its clients get
        WORK_FAIL and it leaves the store."""
        job = self.jobs.get(handle)
        if job is None or job.state is PENDING:
            return False
        self.stats.cancelled += 1
        if self.observer is not None:
            self.observer.event(job, "cancelled")
        self._fail_clients(job)
        if job.store_id and self.persister is not None:
            self.persister.done(job.store_id)
            job.store_id = 0
        if job.state is RUNNING:
            job.ignored = True
            self._unindex_unique(job)
            return True
        self._remove(job)
        return True

    # -- access control -------------------------------------------------------------

    def apply_access(self, rules: AccessRules) -> None:
        """New access rules, for new requests: every peer is identified anew, and
        registrations the rules no longer allow are dropped (jobs already running
        there finish; nobody is disconnected)."""
        access = self.access = rules if rules.active else None
        self.random_handles = rules.restricts_status
        for peer in self.peers:
            if access is None:
                peer.identity = ANONYMOUS
                continue
            peer.identity = access.identify(peer.host, peer.names)
            for f in [f for f in peer.abilities if not access.may("work", peer.identity, f.name)]:
                del peer.abilities[f]
                f.workers.pop(peer, None)
                f.sleepers.pop(peer, None)

    def refused(self, peer: Peer, kind: str, what: bytes) -> None:
        """Count and (rate-limited) log a request the rules refused."""
        stats = self.stats
        if kind == "submit":
            stats.refused_submit += 1
        elif kind == "work":
            stats.refused_work += 1
        elif kind == "status":
            stats.refused_status += 1
        else:
            stats.refused_admin += 1
        self.refusals.note(kind, peer.identity, peer.host, what)

    def drop_function(self, f: Function) -> None:
        del self.functions[f.name]
        self.ready.pop(f, None)

    def shutdown(self, graceful: bool) -> None:
        if self.on_shutdown is not None:
            self.on_shutdown(graceful)


def _index_unique(f: Function, job: Job) -> None:
    """Make the job the one its unique key (or, for "-", its data) coalesces with."""
    if job.unique == b"-":
        f.by_data[job.data] = job
    else:
        f.uniques[job.unique] = job


_HANDLER_NAMES: dict[int, str] = {
    T.CAN_DO: "_h_can_do",
    T.CAN_DO_TIMEOUT: "_h_can_do_timeout",
    T.CANT_DO: "_h_cant_do",
    T.RESET_ABILITIES: "_h_reset_abilities",
    T.PRE_SLEEP: "_h_pre_sleep",
    T.GRAB_JOB: "_h_grab_job",
    T.GRAB_JOB_UNIQ: "_h_grab_job_uniq",
    T.GRAB_JOB_ALL: "_h_grab_job_all",
    T.WORK_STATUS: "_h_work_status",
    T.WORK_DATA: "_h_work_data",
    T.WORK_WARNING: "_h_work_warning",
    T.WORK_COMPLETE: "_h_work_complete",
    T.WORK_FAIL: "_h_work_fail",
    T.WORK_EXCEPTION: "_h_work_exception",
    T.GET_STATUS: "_h_get_status",
    T.GET_STATUS_UNIQUE: "_h_get_status_unique",
    T.ECHO_REQ: "_h_echo_req",
    T.SET_CLIENT_ID: "_h_set_client_id",
    T.OPTION_REQ: "_h_option_req",
    T.SUBMIT_JOB_EPOCH: "_h_submit_job_epoch",
    T.SUBMIT_REDUCE_JOB: "_h_submit_reduce_job",
    T.SUBMIT_REDUCE_JOB_BACKGROUND: "_h_submit_reduce_job_background",
    T.SUBMIT_JOB_SCHED: "_h_submit_job_sched",
}
"""Request packets and their handlers; every other type is answered
``ERROR INVALID_COMMAND`` (responses, UNUSED, ALL_YOURS), as gearmand does."""
