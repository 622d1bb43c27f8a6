"""PHP's gearman extension (libgearman) as client and worker against both servers."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from serverproc import ServerProc

from .conftest import HERE, Spawn, run, status, tool, wait_total, wait_until, wait_workers

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

PHP = HERE / "php"


def worker(
    spawn: Spawn, port: int, func: str, mode: str = "echo", max_jobs: int = 0
) -> subprocess.Popen[bytes]:
    proc = spawn([tool("php"), str(PHP / "worker.php"), str(port), func, mode, str(max_jobs)])
    if not max_jobs:  # one that stops after its jobs may be gone before we look
        wait_workers(port, func)
    return proc


def client(ports: int | list[int], mode: str, *args: str) -> list[str]:
    ports_arg = ",".join(str(p) for p in (ports if isinstance(ports, list) else [ports]))
    result = run([tool("php"), str(PHP / "client.php"), ports_arg, mode, *args], timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().splitlines()


@pytest.mark.parametrize("priority", ["normal", "high", "low"])
def test_do(server: ServerProc, spawn: Spawn, priority: str) -> None:
    worker(spawn, server.port, "up", "upper")
    assert client(server.port, "do", "up", priority, "hello") == ["ok HELLO"]


def test_background_and_job_status(server: ServerProc, spawn: Spawn) -> None:
    handle, first = client(server.port, "background", "later", "x")
    assert json.loads(first) == [True, False, 0, 0]  # known, not running
    worker(spawn, server.port, "later", "echo", 1)
    wait_total(server.port, "later", 0)
    assert json.loads(client(server.port, "status", handle)[0]) == [False, False, 0, 0]


def test_tasks_with_every_callback(server: ServerProc, spawn: Spawn) -> None:
    worker(spawn, server.port, "prog", "progress")
    lines = client(server.port, "tasks", "prog", "3")
    for i in range(3):
        assert f"complete done:t{i}" in lines
    assert lines.count("status 1/3") == 3 and lines.count("status 3/3") == 3
    assert lines.count("data chunk") == 3 and lines.count("warning careful") == 3
    assert lines[-1] == "run ok"


def test_fail_callback(server: ServerProc, spawn: Spawn) -> None:
    worker(spawn, server.port, "bad", "fail")
    lines = client(server.port, "tasks", "bad", "1")
    assert lines == ["fail", "run ok"]


def test_exception_reaches_the_client(server: ServerProc, spawn: Spawn) -> None:
    worker(spawn, server.port, "raise", "exception")
    lines = client(server.port, "tasks", "raise", "1")
    assert lines == ["exception boom", "run ok"]  # libgearman asks for exceptions


def test_worker_killed_mid_job(server: ServerProc, spawn: Spawn) -> None:
    slow = worker(spawn, server.port, "job", "slow")
    waiting = spawn(
        [tool("php"), str(PHP / "client.php"), str(server.port), "do", "job", "normal", "x"]
    )
    assert slow.stderr is not None and slow.stderr.readline() == b"started\n"
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    worker(spawn, server.port, "job", "upper")
    out, _ = waiting.communicate(timeout=30)
    assert out == b"ok X\n"


def test_two_servers_one_stopped(
    start_server: Callable[..., ServerProc], spawn: Spawn, server: ServerProc
) -> None:
    dead = start_server(server.kind)
    for srv in (dead, server):
        worker(spawn, srv.port, "fo", "upper")
    dead.stop()
    wait_until(lambda: dead.proc is not None and dead.proc.poll() is not None)
    for _ in range(3):
        assert client([dead.port, server.port], "do", "fo", "normal", "abc") == ["ok ABC"]
    assert status(server.port)["fo"][0] == 0


def test_one_mib_payload(server: ServerProc, spawn: Spawn) -> None:
    worker(spawn, server.port, "big")
    assert client(server.port, "big", "big") == ["same"]


@pytest.mark.parametrize("level", ["crash", "power"])
def test_pipelined_background_and_foreground_tasks_keep_their_handles(
    start_server: Callable[..., ServerProc], spawn: Spawn, tmp_path: Path, level: str
) -> None:
    # libgearman pairs each JOB_CREATED with its oldest unanswered submission; at the
    # power level a background job's comes after a commit, and a foreground job's
    # that was asked for later must wait behind it (else the tasks swap handles).
    db = tmp_path / "q.sqlite3"
    server = start_server(
        args=["-q", "libsqlite3", f"--libsqlite3-db={db}", f"--durability={level}"]
    )
    worker(spawn, server.port, "echo", "echo")
    lines = client(server.port, "mixed", "echo", "later", "20")
    assert lines[-1] == "run ok"
    completed = sorted(line for line in lines if line.startswith("complete "))
    assert completed == sorted(f"complete f{i} f{i}" for i in range(20))
    created = [line.split()[1:] for line in lines if line.startswith("created ")]
    queued = {handle: unique for handle, unique in created if unique.startswith("b")}
    assert len(queued) == 20
    # The handles the client was given name the jobs it submitted.
    handles = spawn(
        [tool("php"), str(PHP / "worker.php"), str(server.port), "later", "handles", "20"]
    )
    out, _ = handles.communicate(timeout=30)
    ran = dict(line.split() for line in out.decode().splitlines())
    assert ran == queued
