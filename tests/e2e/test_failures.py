"""Failed background jobs end to end: retries with backoff, the failed set, restarts.

Workers are real peers (php-gearman, libgearman's `gearman -w`); the server
is a `geartrain server` subprocess with a settings file, on SQLite and on
Redis."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from geartrain.protocol import PacketType
from serverproc import HOST, ServerProc, admin_command, start_geartrain
from wire import Wire

T = PacketType
PHP_WORKER = Path(__file__).parent.parent / "php_peers" / "failing_worker.php"

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


@pytest.fixture(params=["sqlite", "redis"])
def store_args(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    if request.param == "sqlite":
        yield ["-q", "libsqlite3", "--libsqlite3-db", str(tmp_path / "queue.sqlite3")]
        return
    prefix = f"gt_test_failures_{uuid.uuid4().hex[:8]}:"
    yield ["-q", "redis", "--redis-server", HOST, "--redis-prefix", prefix]
    client = redis.Redis(host=HOST)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def start(tmp_path: Path, store_args: list[str]) -> Iterator[Callable[[], ServerProc]]:
    settings = tmp_path / "settings.toml"
    settings.write_text(SETTINGS)
    servers: list[ServerProc] = []

    def start() -> ServerProc:
        port = servers[-1].port if servers else None
        if servers:
            servers[-1].stop()
        servers.append(
            start_geartrain([*store_args, "--settings", str(settings), "--verbose", "INFO"], port)
        )
        return servers[-1]

    yield start
    for server in servers:
        server.cleanup()


class PhpWorker:
    """failing_worker.php, and the job starts it printed."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            ["php", str(PHP_WORKER), HOST, str(port)], stdout=subprocess.PIPE, text=True
        )
        self.starts: list[tuple[str, str, str, float]] = []

    def wait_for_starts(
        self, count: int, timeout: float = 30.0
    ) -> list[tuple[str, str, str, float]]:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while len(self.starts) < count:
            assert time.monotonic() < deadline, f"only {self.starts}"
            line = self.proc.stdout.readline()
            assert line, "the PHP worker exited"
            function, handle, *unique, at = line.split()
            self.starts.append((function, handle, unique[0] if unique else "", float(at)))
        return self.starts

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def submit_bg(port: int, function: bytes, unique: bytes) -> bytes:
    with Wire(port) as c:
        return c.submit(function, b"payload", unique, T.SUBMIT_JOB_BG)


def failed_lines(port: int) -> list[list[bytes]]:
    reply = admin_command(port, "show failed jobs")
    assert reply.endswith(b".\n")
    return [line.split(b"\t") for line in reply[:-2].splitlines()]


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
