"""Durability levels through a real `geartrain server` on SQLite.

- The default level (crash) keeps the fsync out of the acknowledgement path:
  the server's fsync calls, counted with strace, stay at the background beat's
  pace, and each acknowledged job is in the queue's log rather than committed
  to SQLite; at the power level every transaction is fsynced.
- Completions leave the store promptly: after a kill -9 during a drain at the
  default level, jobs that had already finished do not run again (beyond the
  few in flight); at both levels no job is lost.
- Two servers on one queue file: the second refuses to start, naming the file
  and the first one's pid.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

import serverproc
from geartrain.protocol import PacketType
from geartrain.store.journal import read_generation
from serverproc import ServerProc
from wire import Wire, admin_command

from .test_durability import drain

T = PacketType
pytestmark = [pytest.mark.backend, pytest.mark.slow]

JOBS = 200
SYNC_CALL = re.compile(r"\b(fsync|fdatasync)\((\d+)<([^>]*)>\) = 0")
WRITE_CALL = re.compile(r"\b(?:write|pwrite64)\((\d+)<([^>]*)>, ")


def queue_args(tmp_path: Path, level: str) -> list[str]:
    return [
        "-q",
        "libsqlite3",
        f"--libsqlite3-db={tmp_path / 'q.sqlite3'}",
        f"--durability={level}",
    ]


def submit_one_at_a_time(port: int, count: int) -> None:
    """Each job waits for its JOB_CREATED, so each is a transaction of its own."""
    conn = Wire(port, timeout=10)
    try:
        for i in range(count):
            conn.send(T.SUBMIT_JOB_BG, b"durable", b"", b"%d" % i)
            assert conn.read().type == T.JOB_CREATED
    finally:
        conn.close()


def syncs(trace: Path) -> list[str]:
    """The files the traced server fsynced, one entry per successful call."""
    return [m.group(3) for m in SYNC_CALL.finditer(trace.read_text())]


def writes(trace: Path) -> list[str]:
    """The files the traced server wrote to, one entry per call."""
    return [m.group(2) for m in WRITE_CALL.finditer(trace.read_text())]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("level", ["crash", "power"])
def test_the_default_level_keeps_fsync_out_of_the_acknowledgement(
    tmp_path: Path, level: str
) -> None:
    port = serverproc.free_port()
    trace, pidfile = tmp_path / "trace", tmp_path / "pid"
    args = queue_args(tmp_path, level) + ["-P", str(pidfile)]
    strace = ["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync,write,pwrite64"]
    strace += ["-o", str(trace)]
    server = ServerProc("geartrain", strace + serverproc.geartrain_argv(port, args), port)
    server.start(timeout=30)
    try:
        opened, written = len(syncs(trace)), len(writes(trace))
        started = time.monotonic()
        submit_one_at_a_time(port, JOBS)
        elapsed = time.monotonic() - started
        during = len(syncs(trace)) - opened
        files = writes(trace)[written:]
        if level == "power":
            assert during >= JOBS, f"{during} fsyncs for {JOBS} transactions"
        else:
            # The beat fsyncs once a second at most; give the busy machine slack.
            assert during <= 2 * elapsed + 5, f"{during} fsyncs in {elapsed:.1f} s"
            # Each acknowledged job is in the queue's log (a mapped file: no
            # system call), not committed to SQLite: the WAL is not written.
            logged = [
                job
                for path in sorted(tmp_path.glob("q.sqlite3.pending-*"))
                for added, _ in read_generation(path)
                for job in added
            ]
            assert len(logged) == JOBS
            wal = sum(f.endswith("-wal") for f in files)
            assert wal <= 10, f"{wal} WAL writes for {JOBS} acknowledgements"
            # ...and it does sync the log, within about a second.
            deadline = time.monotonic() + 10
            while not any(".pending-" in f for f in syncs(trace)[opened:]):
                assert time.monotonic() < deadline, "the log was never fsynced"
                time.sleep(0.1)
    finally:
        # strace does not pass signals on: stop the server itself, then strace exits.
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        assert server.proc is not None
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            server.cleanup()
    restarted = serverproc.start_geartrain(queue_args(tmp_path, level))
    try:
        assert len(drain(restarted.port)) == JOBS
    finally:
        restarted.cleanup()


def drain_until_killed(port: int, completed: list[bytes], stop: threading.Event) -> None:
    """A worker that completes one job at a time, recording each WORK_COMPLETE it sent."""
    worker = Wire(port, timeout=10)
    try:
        worker.send(T.CAN_DO, b"durable")
        while not stop.is_set():
            worker.send(T.GRAB_JOB)
            packet = worker.read()
            if packet.type == T.NO_JOB:
                time.sleep(0.01)
                continue
            handle, _, data = packet.args
            worker.send(T.WORK_COMPLETE, handle, b"")
            completed.append(data)
    except OSError:
        pass  # the server was killed
    finally:
        worker.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("level", ["crash", "power"])
def test_finished_jobs_do_not_run_again_after_a_kill(tmp_path: Path, level: str) -> None:
    args = queue_args(tmp_path, level)
    server = serverproc.start_geartrain(args)
    try:
        conn = Wire(server.port, timeout=10)
        submitted = [str(uuid.uuid4()).encode() for _ in range(3000)]
        for data in submitted:
            conn.send(T.SUBMIT_JOB_BG, b"durable", b"", data)
        assert all(conn.read().type == T.JOB_CREATED for _ in submitted)
        conn.close()
        completed: list[bytes] = []
        stop = threading.Event()
        worker = threading.Thread(target=drain_until_killed, args=(server.port, completed, stop))
        worker.start()
        deadline = time.monotonic() + 60
        while len(completed) < 1000 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.kill()
        stop.set()
        worker.join(10)
    finally:
        server.cleanup()
    restarted = serverproc.start_geartrain(args)
    try:
        replayed = drain(restarted.port)
    finally:
        restarted.cleanup()
    again = set(completed) & set(replayed)
    lost = set(submitted) - set(completed) - set(replayed)
    print(f"{level}: {len(completed)} completed before the kill, {len(again)} ran again")
    assert not lost, f"{len(lost)} acknowledged jobs lost"
    if level == "crash":
        # Deletions start a write at once: what runs again is what finished while
        # the last write or two were in flight (1-2 on a quiet machine, up to ~15
        # on a busy one; the old 50 ms deletion delay replayed hundreds here).
        # (At the power level each deletion write waits for an fsync, so what
        # runs again is what finished during the last few fsyncs.)
        assert len(again) <= 50, f"{len(again)} finished jobs ran again"


@pytest.mark.timeout(60)
def test_a_second_server_on_the_same_file_refuses_to_start(
    tmp_path: Path, start_server: Callable[..., ServerProc]
) -> None:
    db = tmp_path / "q.sqlite3"
    first = start_server("geartrain", ["-q", "libsqlite3", f"--libsqlite3-db={db}"])
    second = serverproc.start_geartrain(["-q", "libsqlite3", f"--libsqlite3-db={db}"], ready=False)
    try:
        assert second.proc is not None
        assert second.proc.wait(30) == 1
        last = second.log().strip().splitlines()[-1]
        assert f"{db} is in use by another server (pid {first.pid})" in last
    finally:
        second.cleanup()
    # The first server keeps its queue; once it is gone the file is free again.
    first.kill()
    third = start_server("geartrain", ["-q", "libsqlite3", f"--libsqlite3-db={db}"])
    assert admin_command(third.port, "version").startswith(b"OK")
