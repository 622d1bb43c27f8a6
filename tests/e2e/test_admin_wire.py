"""The text admin protocol on the wire, compared byte for byte between geartrain and gearmand."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from serverproc import ServerProc
from wire import T, Wire


def populate(port: int) -> list[Wire]:
    """A worker with a client id, queued jobs of three priorities, one running job."""
    worker, client = Wire(port), Wire(port)
    worker.send(T.SET_CLIENT_ID, b"wid-1")
    worker.send(T.CAN_DO, b"rev")
    worker.send(T.CAN_DO, b"other")
    client.submit(b"rev", b"run me", b"u-run", T.SUBMIT_JOB_HIGH_BG)
    assert worker.grab() is not None
    client.submit(b"rev", b"h", b"u-h", T.SUBMIT_JOB_HIGH_BG)
    client.submit(b"rev", b"n", b"", T.SUBMIT_JOB_BG)
    client.submit(b"rev", b"l", b"u-l", T.SUBMIT_JOB_LOW)
    worker.sync()
    return [worker, client]


def normalise(reply: bytes) -> bytes:
    """File descriptors and handle numbers differ between servers by nature."""
    reply = re.sub(rb"(?m)^\d+ ", b"FD ", reply)
    return re.sub(rb"H:[^\t\n]+:\d+", b"HANDLE", reply)


@pytest.fixture
def both(start_server: Callable[..., ServerProc]) -> list[ServerProc]:
    return [start_server("geartrain"), start_server("gearmand")]


@pytest.mark.parametrize(
    "command", ["status", "workers", "prioritystatus", "show jobs", "show unique jobs"]
)
def test_listings_match_gearmand(both: list[ServerProc], command: str) -> None:
    replies = []
    for srv in both:
        conns = populate(srv.port)
        with Wire(srv.port) as admin:
            replies.append(normalise(admin.admin(command)))
        for conn in conns:
            conn.close()
    ours, theirs = replies
    # gearmand lists in hash-table order, geartrain in creation order: compare the lines.
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines())
    assert ours.endswith(b".\n") and theirs.endswith(b".\n")


@pytest.mark.parametrize(
    "line",
    [
        b"bogus",
        b"",
        b"show",
        b"show nonsense",
        b"create",
        b"drop",
        b"maxqueue",
        b"maxqueue nosuch 3",
        b"cancel job H:nowhere:99",
        b"cancel this thing",
        b"create function fresh",
        b"drop function nosuch",
        b"STATUS",
    ],
)
def test_replies_match_gearmand(both: list[ServerProc], line: bytes) -> None:
    replies = []
    for srv in both:
        with Wire(srv.port) as admin:
            replies.append(admin.admin(line))
    assert replies[0] == replies[1]


def test_bare_newline_keeps_the_last_character(server: ServerProc) -> None:
    with Wire(server.port) as admin:
        assert admin.admin("create function abc", ending=b"\n") == b"OK\r\n"
        status = admin.admin("status")
    if server.kind == "gearmand":
        # gearmand_differs: gearmand drops the last character of a line ended by "\n".
        assert status == b"ab\t0\t0\t0\n.\n"
    else:
        assert status == b"abc\t0\t0\t0\n.\n"


def test_shutdown(start_server: Callable[..., ServerProc]) -> None:
    srv = start_server("geartrain")
    with Wire(srv.port) as admin:
        assert admin.admin("shutdown") == b"OK\r\n"
    assert srv.proc is not None and srv.proc.wait(10) == 0


def test_shutdown_graceful_waits_for_jobs(start_server: Callable[..., ServerProc]) -> None:
    srv = start_server("geartrain")
    with Wire(srv.port) as admin, Wire(srv.port) as c, Wire(srv.port) as w:
        handle = c.submit(b"f", b"x")
        assert admin.admin("shutdown graceful") == b"OK\r\n"
        assert srv.proc is not None and srv.proc.poll() is None
        w.send(T.CAN_DO, b"f")
        assert w.grab() is not None
        w.send(T.WORK_COMPLETE, handle, b"done")
        assert c.expect(T.WORK_COMPLETE) == (handle, b"done")
        assert srv.proc.wait(10) == 0
