"""Fuzz targets: each takes arbitrary bytes and must never raise anything but
the errors its input deserves.  tests/fuzz/test_fuzz.py runs them briefly under
hypothesis in CI; tests/fuzz/long_run.py runs them for hours under atheris
(docs/development.md)."""

from __future__ import annotations

from collections import Counter

from geartrain.errors import ProtocolError
from geartrain.protocol import REQ, RES, Decoder, Packet, PacketType
from geartrain.server.admin import AdminCommands
from geartrain.server.core import JobServer
from geartrain.server.flags import ServerConfig
from geartrain.server.model import Job, JobState, Peer
from geartrain.server.ports import InMemory
from geartrain.server.requests import Requests
from server.harness import Clock, resolved

T = PacketType


def decoder_target(data: bytes) -> None:
    """Any bytes, in any chunks: events or ProtocolError, and memory follows what came."""
    decoder = Decoder(max_packet_size=1 << 16, max_line_size=256)
    step = 1 + (data[0] if data else 0)
    try:
        for i in range(0, len(data), step):
            decoder.feed(data[i : i + step])
            assert decoder.allocated <= 2 * (decoder.buffered + (1 << 14)) + (1 << 14)
            while (event := decoder.next_event()) is not None:
                assert isinstance(event, Packet) or len(event.line) <= 256
    except ProtocolError:
        pass


class _Reader:
    """Takes small choices out of fuzz bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.data)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def pick(self, options: list[bytes]) -> bytes:
        return options[self.byte() % len(options)]

    def blob(self) -> bytes:
        size = self.byte() % 8
        self.pos += size
        return self.data[self.pos - size : self.pos]


def admin_target(data: bytes) -> None:
    """Any admin line against a server holding a few jobs and workers."""
    core = JobServer(ServerConfig(handle_prefix="H:fuzz"))
    peer = Peer(lambda data: None, lambda: None)
    core.connect(peer)
    requests = Requests(core)
    requests.packet(peer, Packet(REQ, T.CAN_DO, (b"f",)))
    requests.packet(peer, Packet(REQ, T.SUBMIT_JOB_BG, (b"f", b"u", b"x")))
    admin = AdminCommands(core, lambda: "NOTICE")
    for line in data.split(b"\n"):
        if line.lower().startswith(b"result") and len(line.split()) > 2:
            continue  # waiting needs an event loop (tests/server/test_results.py)
        reply = resolved(admin.line(peer, line.rstrip(b"\r")))
        assert reply is None or reply.endswith(b"\n")
    check_core(core)


FUNCTIONS = [b"f0", b"f1", b"f2", b"f\tx"]
UNIQUES = [b"", b"", b"u0", b"u1", b"-"]
REQUESTS = [
    T.CAN_DO,
    T.CANT_DO,
    T.RESET_ABILITIES,
    T.PRE_SLEEP,
    T.SUBMIT_JOB,
    T.SUBMIT_JOB_BG,
    T.SUBMIT_JOB_HIGH,
    T.SUBMIT_JOB_LOW_BG,
    T.GRAB_JOB,
    T.GRAB_JOB_UNIQ,
    T.GRAB_JOB_ALL,
    T.WORK_STATUS,
    T.WORK_DATA,
    T.WORK_COMPLETE,
    T.WORK_FAIL,
    T.WORK_EXCEPTION,
    T.GET_STATUS,
    T.GET_STATUS_UNIQUE,
    T.ECHO_REQ,
    T.CAN_DO_TIMEOUT,
    T.SUBMIT_JOB_EPOCH,
    T.SUBMIT_REDUCE_JOB,
    T.OPTION_REQ,
    T.NOOP,
]


RETRY_OPTIONS = [
    b"retries",
    b"retry attempts=3;on=fail,exception,worker_lost,timeout;backoff=0;jitter=0",
    b"retry-for attempts=2;backoff=1 f0",
    b"retry attempts=0",
]


class _Keeper(InMemory):
    """Half the new jobs are stored at once (a log), half later (a transaction)."""

    def __init__(self) -> None:
        self.pending: list[Job] = []
        self.next_id = 0

    def keep(self, job: Job) -> bool:
        self.next_id += 1
        job.store_id = self.next_id
        if job.store_id % 2 == 0:
            return True
        self.pending.append(job)
        return False


ADMIN_LINES = [
    b"status",
    b"workers",
    b"show jobs",
    b"maxqueue f0 1",
    b"maxqueue f1",
    b"drop function f2",
    b"create function f2",
    b"prioritystatus",
    b"result H:fuzz:1",
    b"result H:fuzz:2",
]


class _CoreRun:
    """One run of :func:`core_target`: four peers, a manual clock, a store that
    commits or fails when the input says."""

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.clock = Clock()
        config = ServerConfig(
            handle_prefix="H:fuzz",
            round_robin=bool(reader.byte() & 1),
            job_retries=reader.byte() % 4 - 1,
            max_jobs=max(0, reader.byte() % 32 - 24),  # mostly none
            max_function_jobs=max(0, reader.byte() % 16 - 10),
            max_function_bytes=max(0, reader.byte() % 64 - 40),
            max_idle_functions=reader.byte() % 3,
        )
        self.core = JobServer(
            config, call_later=self.clock.call_later, clock=lambda: self.clock.now
        )
        self.requests = Requests(self.core)
        self.keeper = _Keeper()
        if reader.byte() & 1:
            self.core.keeper = self.keeper
        self.admin = AdminCommands(self.core, lambda: "NOTICE")
        self.peers = [self.new_peer() for _ in range(4)]

    def new_peer(self) -> Peer:
        peer = Peer(lambda data: None, lambda: None)
        self.core.connect(peer)
        return peer

    def step(self) -> None:
        reader, core = self.reader, self.core
        op = reader.byte()
        index = reader.byte() % len(self.peers)
        peer = self.peers[index]
        if op < 200:
            ptype = REQUESTS[op % len(REQUESTS)]
            # Mostly the jobs this peer runs, so that results are accepted.
            mine = sorted(j.handle for j in peer.jobs)
            handles = mine if mine and reader.byte() % 4 else [*core.jobs, b"H:fuzz:99"]
            args = _args_for(ptype, reader, handles)
            self.requests.packet(peer, Packet(RES if op % 97 == 0 else REQ, ptype, args))
        elif op < 215:
            core.disconnect(peer)
            self.peers[index] = self.new_peer()
        elif op < 230:
            line = reader.pick(ADMIN_LINES)
            if reader.byte() & 1 and core.jobs:
                line = b"cancel job " + next(iter(core.jobs))
            resolved(self.admin.line(peer, line))
        elif op < 240 and self.keeper.pending:
            job = self.keeper.pending.pop(0)
            if reader.byte() & 1:
                core.stored(job)
            else:
                core.store_failed(job, b"down")
        else:
            self.clock.advance(reader.byte() / 4)


def core_target(data: bytes) -> None:
    """Packet sequences from four peers, disconnects, admin commands, store
    commits and failures and the clock moving, with the core's books checked
    after every step."""
    reader = _Reader(data)
    run = _CoreRun(reader)
    while reader.more():
        run.step()
        check_core(run.core)


def _args_for(ptype: T, reader: _Reader, handles: list[bytes]) -> tuple[bytes, ...]:
    f = reader.pick(FUNCTIONS)
    if ptype == T.OPTION_REQ:  # the extensions' options, or anything
        options = [*RETRY_OPTIONS, reader.blob(), b"keep_result=1", b"keep_result=0"]
        return (reader.pick(options),)
    if ptype in (T.CAN_DO, T.CANT_DO):
        return (f,)
    if ptype == T.CAN_DO_TIMEOUT:
        return (f, reader.pick([b"0", b"1", b"-5", b"2000", b"9" * 30]))
    if ptype in (T.SUBMIT_JOB, T.SUBMIT_JOB_BG, T.SUBMIT_JOB_HIGH, T.SUBMIT_JOB_LOW_BG):
        return (f, reader.pick(UNIQUES), reader.blob())
    if ptype == T.SUBMIT_JOB_EPOCH:
        return (f, reader.pick(UNIQUES), reader.pick([b"0", b"1000001", b"x", b"9" * 30]), b"e")
    if ptype == T.SUBMIT_REDUCE_JOB:
        return (f, reader.pick(UNIQUES), b"r", b"", reader.blob())
    handle = reader.pick(handles)
    if ptype == T.WORK_STATUS:
        return (handle, reader.pick([b"1", b"-1", b"9" * 70]), reader.pick([b"2", b"9" * 12]))
    if ptype in (T.WORK_DATA, T.WORK_COMPLETE, T.WORK_EXCEPTION):
        return (handle, reader.blob())
    if ptype in (T.WORK_FAIL, T.GET_STATUS):
        return (handle,)
    if ptype in (T.GET_STATUS_UNIQUE,):
        return (reader.pick(UNIQUES),)
    if ptype == T.ECHO_REQ:
        return (reader.blob(),)
    return ()


def check_core(core: JobServer) -> None:
    """Every job is in exactly one place, and every count matches the jobs."""
    totals: Counter[bytes] = Counter()
    queued: Counter[tuple[bytes, int]] = Counter()
    running: Counter[bytes] = Counter()
    scheduled: Counter[bytes] = Counter()
    size = 0
    sizes: Counter[bytes] = Counter()
    for handle, job in core.jobs.items():
        assert job.handle == handle and job.state is not JobState.DONE
        f = job.function
        assert core.functions.get(f.name) is f, "a job's function was forgotten"
        totals[f.name] += 1
        size += len(job.data)
        sizes[f.name] += len(job.data)
        if job.state is JobState.QUEUED:
            queued[f.name, job.priority] += 1
            assert f.queues is not None
            assert sum(1 for j in f.queues[job.priority] if j is job) == 1
        elif job.state is JobState.RUNNING:
            running[f.name] += 1
            assert job.worker is not None and job in job.worker.jobs
        else:
            assert job.worker is None
            if job.state is JobState.SCHEDULED:
                scheduled[f.name] += 1
        if job.state is not JobState.RUNNING:
            assert all(job not in p.jobs for p in core.peers)
    assert size == core.table.job_bytes
    for name, f in core.functions.items():
        assert f.name == name
        assert f.total == totals[name], (name, f.total, totals[name])
        assert f.data_bytes == sizes[name]
        assert f.running == running[name]
        assert f.scheduled == scheduled[name]
        assert f.queued == [queued[name, p] for p in (0, 1, 2)]
        assert (f in core.queues.ready) == f.has_queued()
        assert set(f.workers) == {p for p in core.peers if f in p.abilities}
        assert all(s in f.workers for s in f.sleepers)
    assert set(core.queues.ready) <= set(core.functions.values())
    for peer in core.peers:
        for f in peer.abilities:
            assert core.functions.get(f.name) is f, "a registered function was forgotten"
