"""`geartrain server`'s command line and process behaviour: gearmand's flags, exit codes,
pid and log files, daemon mode and signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from serverproc import ServerProc, free_port
from wire import T, Wire, admin_command

SERVER = [sys.executable, "-m", "geartrain", "server"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SERVER, *args], capture_output=True, text=True, timeout=30)


def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


GEARMAND_FLAGS = [
    "-b 64",
    "--backlog=64",
    "--exceptions",
    "-j 3",
    "--job-retries=-1",
    "--job-handle-prefix=X",
    "--hashtable-buckets=991",
    "--keepalive --keepalive-idle=60 --keepalive-interval=10 --keepalive-count=3",
    "-l none",
    "--log-file=stderr",
    "-L 127.0.0.1",
    "-p 4730",
    "-R",
    "--round-robin",
    "-q builtin",
    "-t 4",
    "--threads=0",
    "--verbose=INFO",
    "--verbose DEBUG",
    "-w 2",
    "--worker-wakeup=0",
    "--coredump",
    "--syslog",
]


@pytest.mark.parametrize("flags", GEARMAND_FLAGS)
def test_gearmand_flags_are_accepted(flags: str) -> None:
    result = run(*flags.split(), "--check-args")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "flags",
    [
        "--bogus",
        "-p notaport",
        "-p 70000",
        "--verbose=LOUD",
        "-j 300",
        "-q nosuchqueue",
        "--busy-poll=-1",
    ],
)
def test_bad_flags_are_one_line_and_status_1(flags: str) -> None:
    result = run(*flags.split(), "--check-args")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("geartrain server: ")


# gearmand's own option checks (tests/gearmand.cc in its source): the status each
# command line must give, checked against Debian's gearmand in the same run.
GEARMAND_CHECKS = [
    (["foo"], 1),
    (["--log"], 1),
    (["--check-args", "-vvv"], 1),
    (["--check-args", "--verbose=BAD"], 1),
    (["--check-args", "--protocol="], 1),
    (["--check-args", "--config-file"], 1),
    (["--check-args", "--config-file=etc/gearmand.conf"], 1),
    (["--check-args"], 0),
    (["--check-args", "--ssl"], 0),
    (["--check-args", "--help"], 0),
    (["--check-args", "-d"], 0),
    (["--check-args", "-f", "10"], 0),
    (["--check-args", "--log-file=stderr", "--keepalive-count=10", "--keepalive-idle=10"], 0),
    (["--check-args", "-l", '"tmp/foo"', "-P", '"tmp/gearmand.pid"'], 0),
    (["--check-args", "--listen=10", "--port=10"], 0),
    (["--check-args", "-u", "nobody"], 0),
    (["--check-args", "--verbose=FATAL"], 0),
    (["--check-args", "--queue-type=builtin", "--job-retries=4", "--hashtable-buckets=2000"], 0),
]


@pytest.mark.parametrize("binary", ["geartrain", "gearmand"])
@pytest.mark.parametrize(
    ("args", "status"),
    GEARMAND_CHECKS,
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_gearmand_option_checks(binary: str, args: list[str], status: int, tmp_path: Path) -> None:
    argv = SERVER if binary == "geartrain" else ["/usr/sbin/gearmand"]
    result = subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert result.returncode == status, result.stderr
    if binary == "geartrain" and status:
        assert result.stderr.count("\n") == 1, result.stderr


def test_config_file_flags_and_an_unreadable_one(tmp_path: Path) -> None:
    config = tmp_path / "gearmand.conf"
    config.write_text("--port 4731\n--verbose INFO\n")
    assert run(f"--config-file={config}", "--check-args").returncode == 0
    config.chmod(0)
    if os.geteuid() == 0:  # root reads anything: a directory is unreadable as a file
        config = tmp_path
    result = run(f"--config-file={config}", "--check-args")
    assert result.returncode == 1
    assert result.stderr.startswith("geartrain server: cannot read config file")
    assert result.stderr.count("\n") == 1


def test_version() -> None:
    result = run("-V")
    assert result.returncode == 0 and result.stdout.startswith("geartrain ")


def test_pid_file_log_file_and_sighup(tmp_path: Path) -> None:
    port, pid_file, log = free_port(), tmp_path / "g.pid", tmp_path / "g.log"
    proc = subprocess.Popen(
        [*SERVER, "-p", str(port), "-q", "builtin", "-P", str(pid_file), "-l", str(log)]
    )
    try:
        wait_for(pid_file.exists)
        assert int(pid_file.read_text()) == proc.pid
        assert f"listening on 127.0.0.1:{port}" in log.read_text()
        log.rename(tmp_path / "g.log.1")  # logrotate
        proc.send_signal(signal.SIGHUP)
        wait_for(log.exists)
        assert "Log file reopened" in log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert not pid_file.exists()
    finally:
        proc.kill()
        proc.wait()


def test_daemon(tmp_path: Path) -> None:
    port, pid_file = free_port(), tmp_path / "d.pid"
    result = run("-d", "-p", str(port), "-q", "builtin", "-P", str(pid_file), "-l", "none")
    assert result.returncode == 0
    wait_for(pid_file.exists)
    pid = int(pid_file.read_text())
    try:
        assert admin_command(port, "getpid") == b"OK %d\n" % pid
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_file.exists())


def test_listens_on_loopback_by_default_and_says_how_to_open(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*SERVER, "-p", str(port), "-q", "builtin"], stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(3)]
        assert any("-L 0.0.0.0" in line for line in lines), lines
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
        local = [line.split()[3] for line in out.stdout.splitlines()]
        assert local == [f"127.0.0.1:{port}"]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_sigint_and_sigterm_stop(start_server: Callable[..., ServerProc]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        srv = start_server("geartrain")
        srv.signal(sig)
        assert srv.proc is not None and srv.proc.wait(10) == 0


def test_sigusr1_stops_once_the_queue_is_empty(start_server: Callable[..., ServerProc]) -> None:
    srv = start_server("geartrain")
    with Wire(srv.port) as c, Wire(srv.port) as w:
        c.submit(b"f", b"1", b"", T.SUBMIT_JOB_BG)
        handle = c.submit(b"f", b"2", b"", T.SUBMIT_JOB_BG)
        srv.signal(signal.SIGUSR1)
        time.sleep(0.3)
        assert srv.proc is not None and srv.proc.poll() is None  # jobs left: still serving
        w.send(T.CAN_DO, b"f")
        for _ in range(2):
            job = w.grab()
            assert job is not None
            w.send(T.WORK_COMPLETE, job[0], b"")
        assert job[0] == handle
        assert srv.proc.wait(10) == 0


def test_port_in_use_is_a_clear_failure(start_server: Callable[..., ServerProc]) -> None:
    srv = start_server("geartrain")
    result = run("-p", str(srv.port), "-q", "builtin")
    assert result.returncode == 1
    assert "address already in use" in result.stderr.lower()
