"""Debian's `gearadmin` against both servers: the same output for the same state."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from serverproc import ServerProc
from wire import T, Wire

from .conftest import run, tool

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


def gearadmin(server: ServerProc, *args: str) -> tuple[int, bytes, bytes]:
    result = run([tool("gearadmin"), "-h", "127.0.0.1", "-p", str(server.port), *args])
    return result.returncode, result.stdout, result.stderr


def populate(port: int) -> list[Wire]:
    worker, client = Wire(port), Wire(port)
    worker.send(T.SET_CLIENT_ID, b"wid")
    worker.send(T.CAN_DO, b"rev")
    client.submit(b"rev", b"running", b"u-run", T.SUBMIT_JOB_HIGH_BG)
    assert worker.grab() is not None
    client.submit(b"rev", b"queued", b"u-queued", T.SUBMIT_JOB_LOW_BG)
    client.submit(b"rev", b"no unique", b"", T.SUBMIT_JOB_BG)
    worker.sync()
    return [worker, client]


def normalise(out: bytes) -> list[bytes]:
    out = re.sub(rb"(?m)^\d+ ", b"FD ", out)
    out = re.sub(rb"H:[^\t\n]+:\d+", b"HANDLE", out)
    return sorted(out.splitlines())  # gearmand lists in hash order


@pytest.fixture
def both(start_server: Callable[..., ServerProc]) -> list[ServerProc]:
    return [start_server("geartrain"), start_server("gearmand")]


@pytest.mark.parametrize(
    "option", ["--status", "--workers", "--show-jobs", "--show-unique-jobs", "--priority-status"]
)
def test_listings_match(both: list[ServerProc], option: str) -> None:
    outputs = []
    for srv in both:
        conns = populate(srv.port)
        code, out, err = gearadmin(srv, option)
        assert code == 0 and err == b""
        outputs.append(normalise(out))
        for conn in conns:
            conn.close()
    assert outputs[0] == outputs[1]
    assert outputs[0]  # not empty: the state is there


def test_simple_values(server: ServerProc) -> None:
    assert gearadmin(server, "--getpid")[1] == f"{server.pid}\n".encode()
    code, version, _ = gearadmin(server, "--server-version")
    assert code == 0 and re.fullmatch(rb"[0-9][^\s]*\n", version)
    assert re.fullmatch(rb"[A-Z]+\n", gearadmin(server, "--server-verbose")[1])


def test_create_drop_and_cancel(server: ServerProc) -> None:
    assert gearadmin(server, "--create-function", "made")[:2] == (0, b"OK\n")
    assert b"made\t0\t0\t0" in gearadmin(server, "--status")[1]
    assert gearadmin(server, "--drop-function", "made")[:2] == (0, b"OK\n")
    assert b"made" not in gearadmin(server, "--status")[1]
    with Wire(server.port) as c:
        handle = c.submit(b"victim", b"x", b"", T.SUBMIT_JOB_BG)
        code, out, _ = gearadmin(server, "--cancel-job", handle.decode())
        assert code == 0
        jobs = gearadmin(server, "--show-jobs")[1]
        if server.kind == "gearmand":
            # gearmand_differs: gearmand only marks the job (ignore flag 1, still listed).
            assert handle + b"\t0\t1\t0" in jobs
        else:
            assert handle not in jobs


def test_drop_refused_while_workers_are_connected(server: ServerProc) -> None:
    with Wire(server.port) as worker:
        worker.send(T.CAN_DO, b"busy")
        worker.sync()
        code, out, err = gearadmin(server, "--drop-function", "busy")
        assert b"there are still connected workers" in out + err
