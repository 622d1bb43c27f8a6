"""Failed background jobs end to end: retries with backoff, the failed set, restarts.

Workers are real peers (php-gearman, libgearman's `gearman -w`); the server
is a `geartrain server` subprocess with a settings file, on SQLite and on
Redis."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from failing_peer import PhpWorker, failed_lines
from geartrain.embedded import EmbeddedServer
from geartrain.protocol import PacketType
from serverproc import ServerProc, free_port
from wire import HOST, Wire, admin_command

T = PacketType

SETTINGS = """
[functions."flaky_*"]
attempts = 3
retry_on = ["fail", "exception", "worker_lost"]
backoff_base = 0.5
jitter = 0.0

[functions."flaky_throw"]
attempts = 3
retry_on = ["exception"]
backoff_base = 60.0
jitter = 0.0
"""


@pytest.fixture
def start(
    tmp_path: Path, durable_queue: list[str], restartable: Callable[[list[str]], ServerProc]
) -> Callable[[], ServerProc]:
    settings = tmp_path / "settings.toml"
    settings.write_text(SETTINGS)
    return lambda: restartable([*durable_queue, "--settings", str(settings), "--verbose", "INFO"])


def submit_bg(port: int, function: bytes, unique: bytes) -> bytes:
    with Wire(port) as c:
        return c.submit(function, b"payload", unique, T.SUBMIT_JOB_BG)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_failing_php_job_is_retried_kept_retried_and_deleted(
    start: Callable[[], ServerProc],
) -> None:
    server = start()
    worker = PhpWorker(server.port)
    try:
        handle = submit_bg(server.port, b"flaky_fail", b"job-1")
        starts = worker.wait_for_starts(3)
        assert [(s[0], s[1], s[2]) for s in starts] == [
            ("flaky_fail", handle.decode(), "job-1")
        ] * 3
        gaps = [b[3] - a[3] for a, b in zip(starts, starts[1:], strict=False)]
        assert gaps[0] >= 0.45 and gaps[1] >= 0.95 and gaps[1] > gaps[0], gaps  # 0.5 s, then 1 s
        wait_until(lambda: bool(failed_lines(server.port)))
        [line] = failed_lines(server.port)
        assert line[:4] == [handle, b"flaky_fail", b"job-1", b"3"] and line[5] == b"fail"
        assert abs(int(line[4]) - time.time()) < 60
        assert "Job failed for good: flaky_fail" in server.log()
        worker.stop()

        server = start()  # the failed set survives a restart
        assert failed_lines(server.port)[0][:4] == [handle, b"flaky_fail", b"job-1", b"3"]
        worker = PhpWorker(server.port)
        assert admin_command(server.port, f"retry failed {handle.decode()}") == b"OK\r\n"
        starts = worker.wait_for_starts(1)
        assert starts[0][1:3] == (handle.decode(), "job-1")  # its old handle and unique key
        wait_until(lambda: bool(failed_lines(server.port)))  # three more attempts, kept again
        assert admin_command(server.port, f"delete failed {handle.decode()}") == b"OK\r\n"
        assert failed_lines(server.port) == []
        worker.stop()
        server = start()
        assert failed_lines(server.port) == []
    finally:
        worker.stop()


def test_throwing_php_job_is_retried_then_kept_with_the_exception(
    start: Callable[[], ServerProc],
) -> None:
    server = start()
    worker = PhpWorker(server.port)
    try:
        handle = submit_bg(server.port, b"flaky_raise", b"job-5")
        starts = worker.wait_for_starts(3)
        assert {s[1] for s in starts} == {handle.decode()}
        gaps = [b[3] - a[3] for a, b in zip(starts, starts[1:], strict=False)]
        assert gaps[0] >= 0.45 and gaps[1] >= 0.95, gaps
        wait_until(lambda: bool(failed_lines(server.port)))
        [line] = failed_lines(server.port)
        assert line[:4] == [handle, b"flaky_raise", b"job-5", b"3"]
        assert line[5].startswith(b"exception")  # with the text php-gearman sent
    finally:
        worker.stop()


def test_a_waiting_retry_survives_a_restart_under_its_handle(
    start: Callable[[], ServerProc],
) -> None:
    server = start()
    worker = PhpWorker(server.port)
    try:
        handle = submit_bg(server.port, b"flaky_throw", b"job-2")
        worker.wait_for_starts(1)
        wait_until(lambda: "Retrying job" in server.log())
        worker.stop()
        server = start()  # the retry waits 60 s: it is in the store, scheduled
        with Wire(server.port) as c:
            c.send(T.GET_STATUS, handle)
            assert c.expect(T.STATUS_RES) == (handle, b"1", b"0", b"0", b"0")
        assert failed_lines(server.port) == []
    finally:
        worker.stop()


def test_a_worker_killed_mid_job_counts_as_worker_lost(start: Callable[[], ServerProc]) -> None:
    server = start()
    handle = submit_bg(server.port, b"flaky_sleep", b"job-3")
    for _ in range(3):
        worker = PhpWorker(server.port)
        worker.wait_for_starts(1)
        worker.stop()  # SIGKILL while it sleeps in the job
    wait_until(lambda: bool(failed_lines(server.port)))
    [line] = failed_lines(server.port)
    assert line[0] == handle and line[3] == b"3" and line[5].startswith(b"worker_lost")


def test_gearman_cli_worker_failure_is_kept(start: Callable[[], ServerProc]) -> None:
    """libgearman's `gearman -w`: a command that exits non-zero sends WORK_FAIL."""
    server = start()
    worker = subprocess.Popen(
        ["gearman", "-h", HOST, "-p", str(server.port), "-w", "-f", "flaky_cli", "--", "false"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        handle = submit_bg(server.port, b"flaky_cli", b"job-4")
        wait_until(lambda: bool(failed_lines(server.port)))
        [line] = failed_lines(server.port)
        assert line[:4] == [handle, b"flaky_cli", b"job-4", b"3"] and line[5] == b"fail"
    finally:
        worker.kill()
        worker.wait()


def fail_one(port: int, function: bytes, unique: bytes) -> bytes:
    """Submit a background job and fail it from a raw worker; returns its handle."""
    handle = submit_bg(port, function, unique)
    with Wire(port) as worker:
        worker.send(T.CAN_DO, function)
        job = worker.grab()
        assert job is not None and job[0] == handle
        worker.send(T.WORK_FAIL, handle)
        worker.sync()
    return handle


async def test_admin_library_cli_and_metrics(start_server: Callable[..., ServerProc]) -> None:
    from geartrain import Admin, sync

    metrics_port = free_port()
    server = start_server("geartrain", ["--metrics-port", str(metrics_port)])
    first = fail_one(server.port, b"report", b"r-1")
    second = fail_one(server.port, b"resize", b"s-1")
    wait_until(lambda: len(failed_lines(server.port)) == 2)

    async with Admin(server.address) as admin:
        records = await admin.show_failed_jobs()
        assert [(r.handle, r.function, r.unique, r.attempts, r.reason) for r in records] == [
            (first.decode(), "report", "r-1", 1, "fail"),
            (second.decode(), "resize", "s-1", 1, "fail"),
        ]
        assert [r.handle for r in await admin.show_failed_jobs("resize")] == [second.decode()]
        assert not await admin.retry_failed("H:nosuch:1")

    with urllib.request.urlopen(f"http://{HOST}:{metrics_port}/metrics", timeout=5) as reply:
        lines = set(reply.read().decode().splitlines())
    assert 'geartrain_jobs_failed_stored{function="report"} 1.0' in lines

    cli = [sys.executable, "-m", "geartrain", "admin", "-p", str(server.port)]
    out = subprocess.run([*cli, "--show-failed-jobs"], capture_output=True, check=True).stdout
    assert out.splitlines()[0].split(b"\t")[:3] == [first, b"report", b"r-1"]
    out = subprocess.run([*cli, "--delete-failed", first.decode()], capture_output=True).stdout
    assert out == b"OK\n"

    with sync.Admin(server.address) as blocking:
        assert blocking.retry_failed_all("resize") == 1
        assert blocking.show_failed_jobs() == []
        assert blocking.delete_failed_all() == 0
    with Wire(server.port) as c:
        c.send(T.GET_STATUS, second)  # queued again under its old handle
        assert c.expect(T.STATUS_RES) == (second, b"1", b"0", b"0", b"0")


def test_a_bad_settings_file_is_one_line_and_exit_status_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[functions."x"]\nattempts = 0\n')
    argv = [sys.executable, "-m", "geartrain", "server", "-q", "builtin", "-p", str(free_port())]
    done = subprocess.run([*argv, "--settings", str(bad)], capture_output=True, timeout=60)
    assert done.returncode == 1
    [line] = done.stderr.decode().splitlines()
    assert str(bad) in line and "attempts must be a whole number of at least 1" in line


def test_sighup_rereads_the_settings_and_keeps_them_if_the_file_is_bad(
    start_server: Callable[..., ServerProc], tmp_path: Path
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text("[defaults]\nkeep_failed = false\n")
    server = start_server("geartrain", ["--settings", str(settings)])
    fail_one(server.port, b"f", b"1")
    assert failed_lines(server.port) == []
    settings.write_text("[defaults]\nkeep_failed = true\n")
    server.signal(signal.SIGHUP)
    wait_until(lambda: "Settings reloaded" in server.log())
    settings.write_text("[nosuch]\n")
    server.signal(signal.SIGHUP)
    wait_until(lambda: "unknown table [nosuch]; keeping the previous settings" in server.log())
    handle = fail_one(server.port, b"f", b"2")
    assert [line[0] for line in failed_lines(server.port)] == [handle]


def test_submit_job_sched_from_a_raw_client(gearman_server: EmbeddedServer) -> None:
    """Fields that match this minute run at once; the next minute's wait (up to 60 s)
    is checked with the manual clock in tests/server/test_failures.py."""
    server = gearman_server
    now = time.gmtime()
    if now.tm_sec >= 55:  # keep the minute from turning between here and the server
        time.sleep(61 - now.tm_sec)
        now = time.gmtime()
    fields = [str(v).encode() for v in (now.tm_min, now.tm_hour, now.tm_mday, now.tm_mon)]
    with Wire(server.port) as c, Wire(server.port) as worker:
        c.send(T.SUBMIT_JOB_SCHED, b"cron", b"u-now", *fields, b"", b"now")
        handle = c.expect(T.JOB_CREATED)[0]
        later = str((now.tm_min + 1) % 60).encode()
        c.send(T.SUBMIT_JOB_SCHED, b"cron", b"u-later", later, b"", b"", b"", b"", b"later")
        c.expect(T.JOB_CREATED)
        c.send(T.SUBMIT_JOB_SCHED, b"cron", b"", b"61", b"", b"", b"", b"", b"bad")
        assert c.expect(T.ERROR)[0] == b"INVALID_ARGUMENTS"
        worker.send(T.CAN_DO, b"cron")
        job = worker.grab()
        assert job is not None and job[0] == handle and job[3] == b"now"
        assert worker.grab() is None  # the other waits for the next minute
