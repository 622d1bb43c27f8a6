"""Helpers for running real libgearman, PHP and Perl peers.  A missing peer fails, never skips."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (scripts/install-system-deps installs it)"
    return path


def run(
    argv: Sequence[str], *, input: bytes = b"", timeout: float = 20
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout)


Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a background peer; every one is killed after the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(argv: Sequence[str], **kw: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **kw,  # type: ignore[call-overload]
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def status(port: int) -> dict[str, tuple[int, int, int]]:
    """`status` as {function: (total, running, workers)}."""
    from wire import admin_command

    out = {}
    for line in admin_command(port, "status").decode().splitlines():
        if line != ".":
            name, total, running, workers = line.split("\t")
            out[name] = (int(total), int(running), int(workers))
    return out


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def wait_workers(port: int, function: str, count: int = 1) -> None:
    wait_until(lambda: status(port).get(function, (0, 0, 0))[2] >= count)


def wait_total(port: int, function: str, total: int) -> None:
    wait_until(lambda: status(port).get(function, (0, 0, 0))[0] == total)
