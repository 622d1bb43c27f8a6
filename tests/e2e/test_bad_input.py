"""Bad input never takes the server down: the offender gets ERROR or is disconnected,
every other connection and every queued job is untouched."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from geartrain.protocol import HEADER, REQ, pack
from serverproc import ServerProc
from wire import T, Wire


@pytest.fixture
def bystanders(server: ServerProc) -> Iterator[tuple[Wire, bytes]]:
    """A connection with a queued job that must survive whatever the test sends."""
    with Wire(server.port) as c:
        handle = c.submit(b"keep", b"precious", b"", T.SUBMIT_JOB_BG)
        yield c, handle


def still_fine(server: ServerProc, bystander: tuple[Wire, bytes]) -> None:
    conn, handle = bystander
    conn.send(T.ECHO_REQ, b"alive")
    assert conn.expect(T.ECHO_RES) == (b"alive",)
    with Wire(server.port) as w:
        w.send(T.CAN_DO, b"keep")
        assert w.grab() == (handle, b"keep", b"", b"precious")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bad magic", b"\0XYZ" + struct.pack(">II", 7, 0)),
        ("type 0", HEADER.pack(REQ, 0, 0)),
        ("type 43", HEADER.pack(REQ, 43, 0)),
        pytest.param(
            "type 2**32-1",
            HEADER.pack(REQ, 2**32 - 1, 4) + b"abcd",
            marks=pytest.mark.gearmand_differs,
        ),
    ],
)
def test_unframeable_input_closes_only_that_connection(
    server: ServerProc, bystanders: tuple[Wire, bytes], name: str, data: bytes
) -> None:
    if server.kind == "gearmand" and name == "type 2**32-1":
        pytest.xfail("gearmand 1.1.20 crashes (SIGSEGV) on this packet type")
    with Wire(server.port) as bad:
        bad.raw(data)
        assert bad.closed_by_server(), name
    still_fine(server, bystanders)


def test_size_past_the_limit_is_refused_without_allocating(
    start_server: Callable[..., ServerProc],
) -> None:
    srv = start_server("geartrain", ["--max-packet-size=1024"])
    with Wire(srv.port) as c:
        handle = c.submit(b"keep", b"precious", b"", T.SUBMIT_JOB_BG)
        with Wire(srv.port) as bad:
            bad.raw(HEADER.pack(REQ, T.SUBMIT_JOB, 2**32 - 1) + b"f\0\0")
            assert bad.expect(T.ERROR)[0] == b"ARGUMENT_TOO_LARGE"
            assert bad.closed_by_server()
        with Wire(srv.port) as bad:
            bad.raw(pack(REQ, T.SUBMIT_JOB, (b"f", b"", b"x" * 2000)))
            assert bad.expect(T.ERROR)[0] == b"ARGUMENT_TOO_LARGE"
        status = Path(f"/proc/{srv.pid}/status").read_text().splitlines()
        rss_kb = int(next(line.split()[1] for line in status if line.startswith("VmRSS")))
        assert rss_kb < 500_000  # the claimed 4 GiB was never allocated
        still_fine(srv, (c, handle))


def test_endless_admin_line(server: ServerProc, bystanders: tuple[Wire, bytes]) -> None:
    with Wire(server.port) as bad:
        try:
            for _ in range(64):  # 4 MiB without a newline
                bad.raw(b"x" * 65536)
        except OSError:
            pass  # disconnected while sending: that is the answer too
        if server.kind == "geartrain":
            assert bad.closed_by_server()
    still_fine(server, bystanders)


def test_garbage_after_a_good_packet(server: ServerProc, bystanders: tuple[Wire, bytes]) -> None:
    with Wire(server.port) as bad:
        bad.raw(pack(REQ, T.ECHO_REQ, (b"first",)) + b"\0\xff\xff\xff" + b"junk" * 10)
        if server.kind == "geartrain":
            # What came before the garbage is answered; gearmand may close first.
            assert bad.expect(T.ECHO_RES) == (b"first",)
        assert bad.closed_by_server()
    still_fine(server, bystanders)


def test_idle_and_slow_connections_do_not_block_others(
    server: ServerProc, bystanders: tuple[Wire, bytes]
) -> None:
    idle = [Wire(server.port) for _ in range(200)]
    partial = Wire(server.port)
    partial.raw(HEADER.pack(REQ, T.SUBMIT_JOB, 100) + b"fun")  # never finished
    slow_reader = Wire(server.port)
    slow_reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow_reader.flood(pack(REQ, T.ECHO_REQ, (b"x" * 1_000_000,)) * 8)  # never read
    try:
        start = time.monotonic()
        with Wire(server.port) as c, Wire(server.port) as w:
            w.send(T.CAN_DO, b"quick")
            handle = c.submit(b"quick", b"x")
            assert w.grab() is not None
            w.send(T.WORK_COMPLETE, handle, b"done")
            assert c.expect(T.WORK_COMPLETE) == (handle, b"done")
        assert time.monotonic() - start < 3
        still_fine(server, bystanders)
    finally:
        for s in [*idle, partial, slow_reader]:
            s.close()
