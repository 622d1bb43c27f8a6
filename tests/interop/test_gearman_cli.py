"""Debian's `gearman` tool (libgearman) as client and worker against both servers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from serverproc import ServerProc

from .conftest import Spawn, run, tool, wait_total, wait_workers

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


def gearman(server: ServerProc, *args: str) -> list[str]:
    return [tool("gearman"), "-h", "127.0.0.1", "-p", str(server.port), *args]


def test_round_trip_with_a_command_worker(server: ServerProc, spawn: Spawn) -> None:
    spawn(gearman(server, "-w", "-f", "rev", "--", "rev"))
    wait_workers(server.port, "rev")
    result = run(gearman(server, "-f", "rev"), input=b"hello\n")
    assert result.returncode == 0
    assert result.stdout == b"olleh\n"


def test_data_as_arguments_one_job_each(server: ServerProc, spawn: Spawn) -> None:
    spawn(gearman(server, "-w", "-f", "up", "--", "tr", "a-z", "A-Z"))
    wait_workers(server.port, "up")
    result = run(gearman(server, "-f", "up", "one", "two"))
    assert result.stdout == b"ONETWO"


def test_background_then_a_worker_runs_it(server: ServerProc, spawn: Spawn, tmp_path: Path) -> None:
    out = tmp_path / "ran"
    result = run(gearman(server, "-b", "-f", "bg"), input=b"payload")
    assert result.returncode == 0 and result.stdout == b""
    wait_total(server.port, "bg", 1)
    spawn(gearman(server, "-w", "-c", "1", "-f", "bg", "--", "sh", "-c", f"cat > {out}"))
    wait_total(server.port, "bg", 0)
    assert out.read_bytes() == b"payload"


def test_priorities_high_normal_low(server: ServerProc, spawn: Spawn) -> None:
    for flag, data in (("-L", "low"), ("", "normal"), ("-I", "high")):
        args = ["-b", flag] if flag else ["-b"]
        assert run(gearman(server, *args, "-f", "prio", data)).returncode == 0
    wait_total(server.port, "prio", 3)
    worker = spawn(gearman(server, "-w", "-c", "3", "-f", "prio"))  # echoes each workload
    stdout, _ = worker.communicate(timeout=20)
    assert stdout == b"highnormallow"


def test_unique_coalesces(server: ServerProc, spawn: Spawn) -> None:
    for _ in range(3):
        run(gearman(server, "-b", "-u", "same-key", "-f", "uniq", "x"))
    wait_total(server.port, "uniq", 1)


def test_line_mode(server: ServerProc, spawn: Spawn) -> None:
    spawn(gearman(server, "-w", "-f", "wc", "--", "wc", "-c"))
    wait_workers(server.port, "wc")
    result = run(gearman(server, "-n", "-f", "wc"), input=b"a\nbbb\n")
    assert result.stdout.split() == [b"2", b"4"]  # each line (with its newline) is a job


def test_failing_command_fails_the_job(server: ServerProc, spawn: Spawn) -> None:
    spawn(gearman(server, "-w", "-f", "bad", "--", "false"))
    wait_workers(server.port, "bad")
    result = run(gearman(server, "-f", "bad"), input=b"x")
    assert result.returncode != 0
    assert b"Job failed" in result.stderr


def test_gearman_server_environment_variable(server: ServerProc, spawn: Spawn) -> None:
    spawn(gearman(server, "-w", "-f", "env", "--", "rev"))
    wait_workers(server.port, "env")
    env = {**os.environ, "GEARMAN_SERVER": f"127.0.0.1:{server.port}"}
    result = subprocess.run(
        [tool("gearman"), "-f", "env"], input=b"abc", capture_output=True, env=env, timeout=20
    )
    assert result.stdout == b"cba"


def test_worker_exits_after_count(server: ServerProc, spawn: Spawn) -> None:
    worker = spawn(gearman(server, "-w", "-c", "2", "-f", "two"))
    wait_workers(server.port, "two")
    for data in ("a", "b"):
        assert run(gearman(server, "-f", "two", data)).returncode == 0
    stdout, _ = worker.communicate(timeout=10)  # with no command it prints each workload
    assert worker.returncode == 0 and stdout == b"ab"
