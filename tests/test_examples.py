"""The examples in examples/ (and the README) run against both servers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from geartrain import sync
from serverproc import ServerProc

pytestmark = [pytest.mark.timeout(60), pytest.mark.in_process]

EXAMPLES = Path(__file__).parent.parent / "examples"


def run(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@contextmanager
def background(name: str, *args: str, function: str, address: str) -> Iterator[None]:
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / name), *args])
    try:
        with sync.Admin(address) as admin:
            deadline = time.monotonic() + 10
            while not any(s.function == function and s.workers for s in admin.status()):
                assert time.monotonic() < deadline, f"{name} did not register {function}"
                time.sleep(0.02)
        yield
    finally:
        proc.terminate()
        assert proc.wait(10) == 0  # SIGTERM: a graceful stop


def test_string_length(server: ServerProc) -> None:
    with background("strlen_worker.py", server.address, function="strlen", address=server.address):
        assert run("strlen_client.py", server.address) == "5\n"


def test_resize_fan_out_with_progress(server: ServerProc) -> None:
    with background(
        "resize_fanout.py", "worker", server.address, function="resize", address=server.address
    ):
        out = run("resize_fanout.py", "client", server.address).splitlines()
    done = [line for line in out if line.startswith("done: ")]
    assert len(done) == 8 and all(line.endswith("-> 3 files") for line in done)
    assert sum(line.endswith(": 3/3") for line in out) == 8


def test_resize_fan_out_says_how_to_use_it_and_when_no_worker_answers(
    geartrain: ServerProc,
) -> None:
    script = str(EXAMPLES / "resize_fanout.py")
    bare = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=30)
    assert bare.returncode == 2 and bare.stderr.startswith("usage: resize_fanout.py")
    alone = subprocess.run(
        [sys.executable, script, "client", "--timeout", "0.5", geartrain.address],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert alone.returncode == 1 and "Traceback" not in alone.stderr
    assert alone.stderr.startswith("no result within 0.5s: is a resize worker running?")


def test_background_status_polling(server: ServerProc) -> None:
    out = run("background_status.py", server.address).splitlines()
    assert out[0].startswith("queued H:")
    assert out[-1] == "finished"
    assert any(line.startswith("running ") for line in out)


def test_sync_script(server: ServerProc) -> None:
    out = run("sync_script.py", server.address).splitlines()
    assert out[:2] == ["HELLO", "no worker for no-such-function"]


def test_flaky_retry(server: ServerProc) -> None:
    out = run("flaky_retry.py", server.address).splitlines()
    if server.kind == "gearmand":  # no retries: the first failure, and no attempt number
        assert out == ["attempt None of None", "failed: ConnectionError: the service is down"]
        return
    assert out == ["attempt 1 of 3", "attempt 2 of 3", "attempt 3 of 3", "ok after 3"]


def test_python_gearman_port(server: ServerProc) -> None:
    assert run("python_gearman_port.py", server.address) == "COMPLETE b'olleh'\n"


def test_python_gearman_port_ends_beside_another_reverse_worker(server: ServerProc) -> None:
    other = sync.Worker(server.address)
    other.register("reverse", lambda job: job.data[::-1])
    other.start()
    try:
        with sync.Admin(server.address) as admin:
            deadline = time.monotonic() + 10
            while not any(s.function == "reverse" and s.workers for s in admin.status()):
                assert time.monotonic() < deadline
                time.sleep(0.02)
        assert run("python_gearman_port.py", server.address) == "COMPLETE b'olleh'\n"
    finally:
        other.stop(graceful=False)
        other.wait()
