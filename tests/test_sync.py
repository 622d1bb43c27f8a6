"""The blocking facades (geartrain.sync) against a real server."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from geartrain import JobException, JobFailed, JobTimeout, StatusUpdate, WorkerJob, sync
from serverproc import ServerProc

pytestmark = [pytest.mark.timeout(30), pytest.mark.in_process]


def _worker(address: str, **kwargs: object) -> sync.Worker:
    worker = sync.Worker(address, **kwargs)
    worker.register("strlen", lambda job: str(len(job.data)))

    @worker.register("progress")
    def progress(job: WorkerJob) -> bytes:
        job.send_status(1, 2)
        return b"done"

    @worker.register("fails")
    async def fails(job: WorkerJob) -> None:
        job.fail()

    @worker.register("raises")
    def raises(job: WorkerJob) -> None:
        raise RuntimeError("nope")

    return worker


def _wait_registered(address: str, function: str) -> None:
    with sync.Admin(address) as admin:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any(s.function == function and s.workers for s in admin.status()):
                return
            time.sleep(0.02)
    raise AssertionError(f"{function} not registered")


def test_client_and_worker(server: ServerProc) -> None:
    with _worker(server.address), sync.Client(server.address) as client:
        _wait_registered(server.address, "strlen")
        assert client.submit("strlen", "Hello") == b"5"
        job = client.submit_job("progress")
        assert list(job) == [StatusUpdate(1, 2)]
        assert job.result() == b"done" and job.done() and job.handle
        with pytest.raises(JobFailed):
            client.submit("fails")
        with pytest.raises(JobException) as info:
            client.submit("raises")
        assert info.value.data == b"RuntimeError: nope"


def test_background_status_and_batch(server: ServerProc) -> None:
    with sync.Client(server.address) as client:
        handle = client.submit_background("strlen", b"abc", unique="bg-1")
        assert client.get_status(handle).known
        assert client.get_status_unique("bg-1").known
        with _worker(server.address):
            jobs = client.submit_batch([("strlen", "a" * n) for n in range(5)])
            assert sorted(j.result() for j in sync.as_completed(jobs)) == [
                b"0",
                b"1",
                b"2",
                b"3",
                b"4",
            ]
        assert client.echo(b"x") == b"x"


def test_result_wait_timeout_leaves_the_job_running(server: ServerProc) -> None:
    with sync.Client(server.address) as client:
        job = client.submit_job("strlen", b"abcd")
        with pytest.raises(JobTimeout):
            job.result(timeout=0.1)
        assert not job.done()
        with _worker(server.address):
            assert job.result(timeout=5) == b"4"


def test_job_timeout(server: ServerProc) -> None:
    with sync.Client(server.address) as client, pytest.raises(JobTimeout):
        client.submit("nobody", timeout=0.2)


def test_many_threads_share_one_client(server: ServerProc) -> None:
    with (
        _worker(server.address, concurrency=4),
        sync.Client(server.address) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        results = list(pool.map(lambda n: client.submit("strlen", "x" * n), range(40)))
    assert results == [str(n).encode() for n in range(40)]


def test_worker_run_in_a_thread_and_stop(server: ServerProc) -> None:
    worker = _worker(server.address)
    thread = threading.Thread(target=worker.run)  # not the main thread: no signals
    thread.start()
    try:
        _wait_registered(server.address, "strlen")
        with sync.Client(server.address) as client:
            assert client.submit("strlen", b"xy") == b"2"
        assert worker.connected and "strlen" in worker.functions
    finally:
        worker.stop()
        thread.join(5)
    assert not thread.is_alive()
    assert worker.jobs_done == 1
    worker.unregister("strlen")
    assert "strlen" not in worker.functions


def test_admin(server: ServerProc) -> None:
    with sync.Admin(server.address) as admin:
        assert admin.getpid() == server.pid
        assert admin.version()
        assert admin.verbose()
        assert admin.ping() > 0
        admin.create_function("made")
        admin.maxqueue("made", 5)
        assert [s.function for s in admin.status()] == ["made"]
        assert admin.priority_status()[0].function == "made"
        assert admin.workers()
        assert admin.show_jobs() == [] and admin.show_unique_jobs() == []
        assert admin.cancel_job("H:none:1") is False
        admin.drop_function("made")
        assert admin.command("status") == b".\n"
        assert str(admin.server) == server.address


def test_calling_sync_from_the_private_loop_is_refused(server: ServerProc) -> None:
    worker = sync.Worker(server.address)
    errors: list[BaseException] = []

    @worker.register("reenter")
    async def reenter(job: WorkerJob) -> bytes:
        try:
            sync.Client(server.address)  # would deadlock: refused instead
        except RuntimeError as exc:
            errors.append(exc)
        return b""

    with worker, sync.Client(server.address) as client:
        _wait_registered(server.address, "reenter")
        client.submit("reenter")
    assert errors and "own event loop" in str(errors[0])


SYNC_WORKER = """
import sys, time
from geartrain import sync

worker = sync.Worker(sys.argv[1])

@worker.register("slow")
def slow(job):
    print("started", flush=True)
    time.sleep(0.5)
    return b"finished"

worker.run()
print("stopped", worker.jobs_done, flush=True)
"""


def test_worker_run_stops_gracefully_on_sigterm(server: ServerProc, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(SYNC_WORKER)
    proc = subprocess.Popen(
        [sys.executable, str(script), server.address], stdout=subprocess.PIPE, text=True
    )
    try:
        _wait_registered(server.address, "slow")
        with sync.Client(server.address) as client:
            job = client.submit_job("slow")
            assert proc.stdout is not None and proc.stdout.readline() == "started\n"
            proc.send_signal(signal.SIGTERM)
            assert job.result(timeout=5) == b"finished"
        out, _ = proc.communicate(timeout=10)
        assert (proc.returncode, out) == (0, "stopped 1\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
