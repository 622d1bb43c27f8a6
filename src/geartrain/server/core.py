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
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..protocol import HEADER, PACKETS, REQ, RES, Packet, PacketType, frame, pack
from ..store import StoredJob
from .config import ServerConfig
from .jobs import Function, Job, JobState, Peer, Persister, Priority, Stats
from .logs import NOTICE
from .replies import (
    ERR_ARGS,
    ERR_COMMAND,
    ERR_HANDLE_SIZE,
    ERR_MAGIC,
    ERR_NO_JOB_DATA,
    ERR_NO_JOB_EXCEPTION,
    ERR_NO_JOB_RESULT,
    ERR_OPTION,
    ERR_QUEUE_FULL,
    ERR_UNIQUE,
    NO_JOB,
    NOOP,
    c_atoi,
    error_packet,
)

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
        self.functions: dict[bytes, Function] = {}
        self.jobs: dict[bytes, Job] = {}
        self.peers: dict[Peer, None] = {}  # in connection order, for `workers`
        self.handle_prefix = self.config.handle_prefix.encode() + b":"
        self.handle_count = 0
        self.stats = Stats()
        self.next_store_id = 1
        self.on_idle: Callable[[], None] | None = None  # called when the last job leaves
        self.on_shutdown: Callable[[bool], None] | None = None  # set by the app
        self._epoch_heap: list[tuple[int, int, Job]] = []
        self._epoch_timer: Any = None
        self._epoch_seq = 0
        self.handlers: list[Callable[[Peer, tuple[bytes, ...]], None] | None] = [None] * 64
        for ptype, name in _HANDLER_NAMES.items():
            self.handlers[ptype] = getattr(self, name)
        for ptype, (priority, background) in SUBMIT_KINDS.items():
            self.handlers[ptype] = self._submit_handler(priority, background)

    # -- connections ------------------------------------------------------

    def connect(self, peer: Peer) -> None:
        peer.exceptions = self.config.exceptions
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
        when: int = 0,
        reducer: bytes = b"",
    ) -> Job | None:
        """SUBMIT_JOB and friends: create or coalesce a job and answer JOB_CREATED."""
        if len(unique) > MAX_UNIQUE:
            peer.send(ERR_UNIQUE)
            return None
        f = self.functions.get(name) or self.function(name)
        if unique:
            existing = self._find_unique(f, unique, data)
            if existing is not None:
                self.stats.coalesced += 1
                self._coalesce(existing, peer, background)
                return existing
        limits = f.max_queue
        if limits is not None and limits[priority] and f.total >= limits[priority]:
            peer.send(ERR_QUEUE_FULL)
            return None
        self.handle_count += 1
        self.stats.created += 1
        job = Job(
            self.handle_prefix + str(self.handle_count).encode(),
            f,
            unique,
            data,
            priority,
            background,
        )
        job.when = when
        job.reducer = reducer
        self.jobs[job.handle] = job
        f.total += 1
        if unique:
            if unique == b"-":
                f.by_data[data] = job
            else:
                f.uniques[unique] = job
        if not background:
            self._attach(job, peer)
        if background and self.persister is not None:
            job.state = PENDING
            job.store_id = self._take_store_id()
            job.waiters = [peer]
            self.persister.add(job)
            return job
        peer.send(HEADER.pack(RES, T.JOB_CREATED, len(job.handle)) + job.handle)
        self._enqueue(job)
        return job

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
        else:
            peer.send(HEADER.pack(RES, T.JOB_CREATED, len(job.handle)) + job.handle)

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
                peer.send(created)
        # A job made durable by a later background submission may already be
        # queued, running or even finished (its done() then follows this add).
        if job.state is PENDING:
            self._enqueue(job)

    def store_failed(self, job: Job, reason: bytes) -> None:
        """The store could not take ``job``: tell its submitters; it never existed."""
        waiters, job.waiters = job.waiters, None
        error = error_packet(b"QUEUE_ERROR", reason)
        for peer in waiters or ():
            if not peer.closed:
                peer.send(error)
        job.store_id = 0
        if job.state is PENDING:
            self._remove(job)
        else:
            # A foreground job that a background submission tried to make durable:
            # it stays what it was, for the clients still waiting on it.
            job.background = False
            if not job.clients:
                self._abandon(job)

    def restore(self, stored: Iterable[StoredJob]) -> int:
        """Load jobs from the store at start, in submission order; returns the count."""
        count = 0
        for s in stored:
            f = self.function(s.function)
            self.handle_count += 1
            job = Job(
                self.handle_prefix + str(self.handle_count).encode(),
                f,
                s.unique,
                s.data,
                s.priority if s.priority in (0, 1, 2) else NORMAL,
                True,
            )
            job.when = s.when
            job.store_id = s.id
            self.next_store_id = max(self.next_store_id, s.id + 1)
            self.jobs[job.handle] = job
            f.total += 1
            if s.unique and self._find_unique(f, s.unique, s.data) is None:
                if s.unique == b"-":
                    f.by_data[s.data] = job
                else:
                    f.uniques[s.unique] = job
            self._enqueue(job)
            count += 1
        self.stats.restored += count
        return count

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
        f.queues[job.priority].append(job)
        f.queued[job.priority] += 1
        if f.sleepers:
            self._wake(f)

    def _wake(self, f: Function) -> None:
        """Send one NOOP to sleeping workers of ``f`` (``--worker-wakeup`` of them)."""
        limit = self.config.worker_wakeup or len(f.sleepers)
        sleepers = f.sleepers
        while limit and sleepers:
            peer, _ = sleepers.popitem(last=False)
            peer.noop_sent = True
            for other, _t in peer.abilities:
                if other is not f:
                    other.sleepers.pop(peer, None)
            peer.send(NOOP)
            limit -= 1

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
                job.when = 0
                self._enqueue(job)
        self._arm_epoch_timer()

    def _take(self, peer: Peer) -> Job | None:
        """Pick the job for a grabbing worker: highest priority first across all its
        functions (gearmand 2.0; 1.1 looked at one function at a time), FIFO within
        a priority, functions in registration order (rotated with --round-robin)."""
        abilities = peer.abilities
        for priority in (0, 1, 2):
            for index, (f, _timeout) in enumerate(abilities):
                if not f.queued[priority]:
                    continue
                queue = f.queues[priority]
                job = queue.popleft()
                while job.state is not QUEUED:
                    job = queue.popleft()  # skip entries of cancelled jobs
                f.queued[priority] -= 1
                if self.config.round_robin:
                    abilities.append(abilities.pop(index))
                return job
        return None

    def _has_work(self, peer: Peer) -> bool:
        return any(f.has_queued() for f, _t in peer.abilities)

    # -- workers --------------------------------------------------------------

    def _can_do(self, peer: Peer, name: bytes, timeout: int) -> None:
        f = self.function(name)
        peer.abilities.insert(0, (f, timeout))
        f.workers.append(peer)
        if peer.sleeping and not peer.noop_sent:
            f.sleepers[peer] = None

    def _drop_abilities(self, peer: Peer, name: bytes | None) -> None:
        """CANT_DO (one function), RESET_ABILITIES or disconnect (all): the worker's
        running jobs of those functions go back to the queue."""
        kept: list[tuple[Function, int]] = []
        dropped: set[Function] = set()
        for f, timeout in peer.abilities:
            if name is None or f.name == name:
                f.workers.remove(peer)
                f.sleepers.pop(peer, None)
                dropped.add(f)
            else:
                kept.append((f, timeout))
        peer.abilities = kept
        for job in [j for j in peer.jobs if j.function in dropped or name is None]:
            self._requeue(job)

    def _requeue(self, job: Job) -> None:
        """The worker lost the job; run it again unless --job-retries says no."""
        job.retries += 1
        limit = self.config.job_retries
        if job.ignored:
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
            self._finish(job)
            return
        self.stats.requeued += 1
        self._release(job)
        job.numerator = job.denominator = 0
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
                for f, _t in peer.abilities:
                    f.sleepers.pop(peer, None)
            peer.sleeping = False
        peer.noop_sent = False
        job = self._take(peer)
        if job is None:
            peer.send(NO_JOB)
            return
        job.state = RUNNING
        job.worker = peer
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
        for af, timeout in peer.abilities:
            if af is f:
                if timeout > 0 and self.call_later is not None:
                    job.timer = self.call_later(timeout / 1000.0, lambda: self._timed_out(job))
                break

    def _timed_out(self, job: Job) -> None:
        """CAN_DO_TIMEOUT expired: the job fails, as the protocol text says.

        gearmand requeues it silently instead (and 1.1 could hang doing so)."""
        job.timer = None
        if job.state is not RUNNING:
            return
        log.info("Job %s timed out on its worker", job.handle.decode(errors="replace"))
        self.stats.timed_out += 1
        self._fail_clients(job)
        self._finish(job)

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
        elif state is SCHEDULED:
            f.scheduled -= 1
        job.state = DONE
        f.total -= 1
        self.jobs.pop(job.handle, None)
        self._unindex_unique(job)
        if job.clients:
            for client in job.clients:
                if client.attached is not None:
                    client.attached.discard(job)
            job.clients = None
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
        if len(raw) > 20:  # gearmand closes on an overlong number
            peer.close()
            return
        timeout = max(0, c_atoi(raw))
        # gearmand raises a timeout under a second to one (connection.cc); libraries
        # that send seconds ("2") and gearmand's own test suite rely on it.
        self._can_do(peer, args[0], 1000 if 0 < timeout < 1000 else timeout)

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
            for f, _t in peer.abilities:
                f.sleepers[peer] = None

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
        self._forward(job, T.WORK_FAIL, args)
        self._finish(job)

    def _h_work_exception(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = self._owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_EXCEPTION)
            return
        self.stats.exceptions += 1
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
        when = c_atoi(args[2])
        if not -(2**63) <= when < 2**63:  # strtoll overflow: gearmand closes
            peer.close()
            return
        self.submit(peer, args[0], args[1], args[3], NORMAL, True, when=max(0, when))

    def _h_submit_reduce_job(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.submit(peer, args[0], args[1], args[4], NORMAL, False, reducer=args[2])

    def _h_submit_reduce_job_background(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.submit(peer, args[0], args[1], args[4], NORMAL, True, reducer=args[2])

    def _h_submit_job_sched(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        peer.send(ERR_COMMAND)  # parsed, then refused: gearmand never implemented it

    # -- admin support ------------------------------------------------------------

    def cancel(self, handle: bytes) -> bool:
        """`cancel job`: a queued job is removed (gearmand only marks it); a running
        one is detached from its clients and its result dropped.  Its clients get
        WORK_FAIL and it leaves the store."""
        job = self.jobs.get(handle)
        if job is None or job.state is PENDING:
            return False
        self.stats.cancelled += 1
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

    def drop_function(self, f: Function) -> None:
        del self.functions[f.name]

    def shutdown(self, graceful: bool) -> None:
        if self.on_shutdown is not None:
            self.on_shutdown(graceful)


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
