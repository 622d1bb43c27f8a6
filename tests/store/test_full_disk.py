"""A full disk under the default queue (SQLite, and its log at the crash level), on a
real small filesystem (a tmpfs the test mounts) that the queue's own jobs fill, at
both durability levels.

- Once the disk is full, background jobs get ``QUEUE_ERROR``; the state shows on
  ``/readyz``, in ``/metrics`` and once in the log; no acknowledged job is lost.
- Shrinking the queue needs no room beyond what it frees: while clients keep
  submitting, the queue drains, and then thousands of new jobs are accepted, none
  refused, without a restart.
- A server killed with kill -9 while the disk is full starts again on it and runs
  every job it had acknowledged.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from console.conftest import Console
from e2e.test_server_cli import wait_for
from geartrain.protocol import PacketType
from gt_helpers import take_the_rest
from serverproc import ServerProc, free_port
from wire import Wire

from .test_durability import drain, submit

T = PacketType
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DISK = "8m"
WINDOW = 64  # submissions in flight while filling
PAYLOAD = b"x" * 400


def queue_args(disk: Path, level: str, console_port: int) -> list[str]:
    return [
        "-q",
        "libsqlite3",
        f"--libsqlite3-db={disk / 'queue.sqlite3'}",
        f"--durability={level}",
        f"--console-port={console_port}",
    ]


def submit_many(port: int, prefix: bytes, count: int | None = None) -> tuple[list[bytes], int]:
    """Pipeline background jobs: ``count`` of them, or (None) until the first refusal.
    Returns the acknowledged payloads and the number refused (always QUEUE_ERROR)."""
    prefix += b"%d " % time.monotonic_ns()  # each call's payloads its own
    conn = Wire(port, timeout=10)
    acked: list[bytes] = []
    in_flight: list[bytes] = []
    refused = sent = 0
    try:
        while in_flight or (refused == 0 if count is None else sent < count):
            while len(in_flight) < WINDOW and (refused == 0 if count is None else sent < count):
                data = prefix + b"%d " % sent + PAYLOAD
                conn.send(T.SUBMIT_JOB_BG, b"durable", b"", data)
                in_flight.append(data)
                sent += 1
            reply, data = conn.read(), in_flight.pop(0)
            if reply.type == T.JOB_CREATED:
                acked.append(data)
            else:
                assert reply.type == T.ERROR and reply.args[0] == b"QUEUE_ERROR", reply
                refused += 1
    finally:
        conn.close()
    return acked, refused


def fill(port: int) -> list[bytes]:
    """Submit until the server refuses at once (a checkpoint, or the rest of a log
    file allocated earlier, may take some more after the first refusal); returns
    the acknowledged payloads."""
    acked: list[bytes] = []
    while True:
        more, _ = submit_many(port, b"fill ")
        if not more:
            return acked
        acked += more


@contextmanager
def submitting(port: int) -> Iterator[list[bytes]]:
    """A client that keeps submitting, one job at a time, during the block; yields
    the payloads acknowledged so far."""
    acked: list[bytes] = []
    stop = threading.Event()

    def run() -> None:
        conn = Wire(port, timeout=10)
        sent = 0
        try:
            while not stop.is_set():
                data = b"during %d" % sent
                sent += 1
                if submit(conn, T.SUBMIT_JOB_BG, data).type == T.JOB_CREATED:
                    acked.append(data)
                time.sleep(0.005)
        finally:
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield acked
    finally:
        stop.set()
        thread.join(30)


def readyz(console: Console) -> tuple[int, str]:
    status, _, body = console.request("GET", "/readyz")
    return status, body.decode()


def metric(console: Console, sample: str) -> float:
    text = console.request("GET", "/metrics")[2].decode()
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert found, sample
    return float(found.group(1))


def check_full(console: Console) -> None:
    wait_for(lambda: readyz(console)[0] == 503, timeout=30)
    assert readyz(console)[1].startswith("not ready: queue store full: "), readyz(console)
    assert metric(console, 'geartrain_store_state{state="full"}') == 1
    assert metric(console, 'geartrain_store_state{state="ok"}') == 0


def check_ok(console: Console) -> None:
    wait_for(lambda: readyz(console) == (200, "ready\n"), timeout=30)
    assert metric(console, 'geartrain_store_state{state="ok"}') == 1


def filled_by_its_queue(
    level: str, small_disk: Callable[[str], Path], start_server: Callable[..., ServerProc]
) -> tuple[Path, ServerProc, Console, list[bytes]]:
    """A server whose jobs filled its small disk, with the jobs it acknowledged."""
    disk = small_disk(DISK)
    console_port = free_port()
    server = start_server("geartrain", queue_args(disk, level, console_port))
    acked = fill(server.port)
    assert len(acked) > 5000
    return disk, server, Console(server, console_port), acked


@pytest.mark.parametrize("level", ["crash", "power"])
def test_a_full_disk_refuses_then_recovers_without_restart(
    level: str, small_disk: Callable[[str], Path], start_server: Callable[..., ServerProc]
) -> None:
    disk, server, console, acked = filled_by_its_queue(level, small_disk, start_server)
    check_full(console)
    assert metric(console, 'geartrain_store_failures_total{kind="write"}') >= 1

    # Another program takes the last bytes, and gives them back.
    filler = take_the_rest(disk)
    acked += fill(server.port)
    filler.unlink()

    # The queue drains while a client keeps submitting (refused, until there is room).
    with submitting(server.port) as during:
        ran = drain(server.port)
    ran += drain(server.port)
    assert Counter(ran) == Counter(acked + during), "an acknowledged job was lost or ran twice"
    check_ok(console)

    # Room again, without a restart: thousands of jobs, none refused.
    after, refused = submit_many(server.port, b"after ", 5000)
    assert refused == 0 and len(after) == 5000
    assert sorted(drain(server.port)) == sorted(after)
    # Each episode is logged as it starts and as it ends, not once per refusal.
    episodes = re.findall(r"Queue store (full|is back)", server.log())
    assert episodes[::2] == ["full"] * len(episodes[::2]), episodes
    assert episodes[1::2] == ["is back"] * len(episodes[::2]), episodes
    assert len(episodes) <= 6, episodes


@pytest.mark.parametrize("level", ["crash", "power"])
def test_a_server_killed_on_a_full_disk_starts_on_it_and_serves_its_jobs(
    level: str, small_disk: Callable[[str], Path], start_server: Callable[..., ServerProc]
) -> None:
    disk, server, console, acked = filled_by_its_queue(level, small_disk, start_server)
    filler = take_the_rest(disk)
    acked += fill(server.port)
    server.kill()

    server.start()  # on a disk without a byte free
    check_full(console)
    assert submit_many(server.port, b"refused ", 20) == ([], 20)
    assert sorted(drain(server.port)) == sorted(acked)

    filler.unlink()  # the deletions of the drain go in, the log is checkpointed: room
    check_ok(console)
    after, refused = submit_many(server.port, b"after ", 3000)
    assert refused == 0
    server.restart()
    assert sorted(drain(server.port)) == sorted(after)
