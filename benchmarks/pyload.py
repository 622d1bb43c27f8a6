"""Load generators in Python for what PHP does poorly: latency, many idle workers,
filling a queue fast.  Raw sockets with TCP_NODELAY, built on geartrain.protocol,
each side in its own process so neither waits for the other's interpreter lock."""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from geartrain.protocol import REQ, Decoder, Packet, PacketType, pack
from geartrain.readable import waiting

T = PacketType


class Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = Decoder(max_packet_size=1 << 30, waiting=waiting(self.sock.fileno()))

    def send(self, ptype: PacketType, *args: bytes) -> None:
        self.sock.sendall(pack(REQ, ptype, args))

    def read(self) -> Packet:
        # Straight into the decoder's buffer, as the server reads: recv() would allocate
        # a new megabyte for every read, and that cost would follow how the server's
        # sends happen to be cut into segments rather than what it does.
        while True:
            event = self.decoder.next_event()
            if isinstance(event, Packet):
                return event
            got = self.sock.recv_into(self.decoder.get_buffer())
            if not got:
                raise ConnectionError("closed")
            self.decoder.buffer_updated(got)


def grab(conn: Conn, request: PacketType = T.GRAB_JOB_UNIQ) -> Packet | None:
    """A worker's next job; None after NO_JOB, once it has slept until the server's NOOP."""
    conn.send(request)
    packet = conn.read()
    if packet.type != T.NO_JOB:
        return packet
    conn.send(T.PRE_SLEEP)
    conn.read()  # NOOP (or the server closing at the end of a run)
    return None


def _echo_worker(
    port: int,
    function: bytes,
    ready: multiprocessing.Event,  # type: ignore[valid-type]
    done: Any = None,
) -> None:
    """Echo each job's data back; with ``done`` (a shared counter), answer with nothing
    and count the jobs instead (a background job's result goes nowhere)."""
    conn = Conn(port)
    conn.send(T.CAN_DO, function)
    ready.set()  # type: ignore[attr-defined]
    while True:
        packet = grab(conn)
        if packet is None:
            continue
        if done is None:
            conn.send(T.WORK_COMPLETE, packet.args[0], packet.args[3])
            continue
        conn.send(T.WORK_COMPLETE, packet.args[0], b"")
        with done.get_lock():
            done.value += 1


@contextmanager
def echo_worker(port: int, function: bytes = b"lat", done: Any = None) -> Iterator[None]:
    ready = multiprocessing.Event()
    proc = multiprocessing.Process(
        target=_echo_worker, args=(port, function, ready, done), daemon=True
    )
    proc.start()
    ready.wait(10)
    time.sleep(0.2)
    try:
        yield
    finally:
        proc.terminate()
        proc.join()


def latency(port: int, jobs: int = 2000, gap: float = 0.001) -> list[float]:
    """Microseconds from SUBMIT_JOB to WORK_COMPLETE, one job at a time on an idle server."""
    with echo_worker(port):
        conn = Conn(port)
        out = []
        for _ in range(jobs):
            start = time.perf_counter()
            conn.send(T.SUBMIT_JOB, b"lat", b"", b"x")
            while conn.read().type != T.WORK_COMPLETE:
                pass
            out.append((time.perf_counter() - start) * 1e6)
            time.sleep(gap)
        conn.sock.close()
    return out


def _idle_workers(
    port: int, count: int, ready: multiprocessing.Event, stop: multiprocessing.Event
) -> None:  # type: ignore[valid-type]
    conns = []
    for _ in range(count):
        conn = Conn(port)
        conn.sock.sendall(
            pack(REQ, T.CAN_DO, (b"idle",)) + pack(REQ, T.GRAB_JOB, ()) + pack(REQ, T.PRE_SLEEP, ())
        )
        conns.append(conn)
    for conn in conns:
        assert conn.read().type == T.NO_JOB
    ready.set()  # type: ignore[attr-defined]
    stop.wait()  # type: ignore[attr-defined]


@contextmanager
def idle_workers(port: int, count: int = 1000) -> Iterator[None]:
    """``count`` connected workers registered for "idle", asleep, for the block."""
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(
        target=_idle_workers, args=(port, count, ready, stop), daemon=True
    )
    proc.start()
    if not ready.wait(60):
        raise RuntimeError("idle workers did not connect")
    try:
        yield
    finally:
        stop.set()
        proc.join(10)


def fill(port: int, jobs: int = 200_000, size: int = 100, window: int = 1000) -> float:
    """Queue ``jobs`` background jobs (``size`` bytes, a 36-byte uuid unique); returns seconds."""
    conn = Conn(port)
    data = b"x" * size
    start = time.perf_counter()
    for base in range(0, jobs, window):
        n = min(window, jobs - base)
        conn.sock.sendall(
            b"".join(
                pack(REQ, T.SUBMIT_JOB_BG, (b"mem", str(uuid.uuid4()).encode(), data))
                for _ in range(n)
            )
        )
        for _ in range(n):
            assert conn.read().type == T.JOB_CREATED
    elapsed = time.perf_counter() - start
    conn.sock.close()
    return elapsed


def payload(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + b"x" * (size % 256)


def _fg_client(port: int, jobs: int, size: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    conn = Conn(port)
    data = payload(size)
    done = 0
    for _ in range(jobs):
        conn.send(T.SUBMIT_JOB, b"lat", b"", data)
        while True:
            packet = conn.read()
            if packet.type == T.WORK_COMPLETE:
                done += packet.args[1] == data
                break
    results.put(done)


def foreground(
    port: int, clients: int, jobs: int, size: int, workers: int = 2
) -> tuple[int, float]:
    """``clients`` processes each running ``jobs`` foreground jobs of ``size`` bytes through
    ``workers`` echo workers; returns (jobs done intact, wall seconds)."""
    results: multiprocessing.Queue[int] = multiprocessing.Queue()
    with contextlib.ExitStack() as stack:
        for _ in range(workers):
            stack.enter_context(echo_worker(port))
        procs = [
            multiprocessing.Process(target=_fg_client, args=(port, jobs, size, results))
            for _ in range(clients)
        ]
        start = time.perf_counter()
        for proc in procs:
            proc.start()
        done = sum(results.get(timeout=600) for _ in procs)
        elapsed = time.perf_counter() - start
        for proc in procs:
            proc.join()
    return done, elapsed


def _bg_client(port: int, jobs: int, size: int) -> None:
    conn = Conn(port)
    data = payload(size)
    for _ in range(jobs):
        conn.send(T.SUBMIT_JOB_BG, b"lat", str(uuid.uuid4()).encode(), data)
        while conn.read().type != T.JOB_CREATED:
            pass


def background(
    port: int, clients: int, jobs: int, size: int, workers: int = 2
) -> tuple[int, float]:
    """``clients`` processes each submitting ``jobs`` background jobs of ``size`` bytes,
    one at a time (each waits for JOB_CREATED), while ``workers`` workers take them and
    answer with nothing; returns (jobs done, wall seconds until the last is done)."""
    done = multiprocessing.Value("q", 0)
    total = clients * jobs
    with contextlib.ExitStack() as stack:
        for _ in range(workers):
            stack.enter_context(echo_worker(port, done=done))
        procs = [
            multiprocessing.Process(target=_bg_client, args=(port, jobs, size))
            for _ in range(clients)
        ]
        start = time.perf_counter()
        for proc in procs:
            proc.start()
        deadline = start + 600
        while done.value < total and time.perf_counter() < deadline:
            time.sleep(0.002)
        elapsed = time.perf_counter() - start
        for proc in procs:
            proc.join()
    return int(done.value), elapsed
