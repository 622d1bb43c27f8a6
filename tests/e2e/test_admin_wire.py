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


def test_simple_values(server: ServerProc) -> None:
    with Wire(server.port) as admin:
        assert re.fullmatch(rb"OK \d+\n", admin.admin("getpid"))
        assert re.fullmatch(rb"OK [^\r\n]+\n", admin.admin("version"))
        assert re.fullmatch(rb"OK [A-Z]+\n", admin.admin("verbose"))


def test_bare_newline_keeps_the_last_character(server: ServerProc) -> None:
    with Wire(server.port) as admin:
        assert admin.admin("create function abc", ending=b"\n") == b"OK\r\n"
        status = admin.admin("status")
    if server.kind == "gearmand":
        # gearmand_differs: gearmand drops the last character of a line ended by "\n".
        assert status == b"ab\t0\t0\t0\n.\n"
    else:
        assert status == b"abc\t0\t0\t0\n.\n"


def test_drop_function(server: ServerProc) -> None:
    with Wire(server.port) as admin, Wire(server.port) as worker:
        worker.send(T.CAN_DO, b"busy")
        worker.sync()
        expected = b"ERR there are still connected workers or executing clients\r\n"
        assert admin.admin("drop function busy") == expected
        assert admin.admin("create function idle") == b"OK\r\n"
        assert admin.admin("drop function IDLE") == b"OK\r\n"
        assert admin.admin("drop function idle") == b"ERR function not found\r\n"


def test_maxqueue_refuses_submissions(server: ServerProc) -> None:
    with Wire(server.port) as admin, Wire(server.port) as c:
        c.submit(b"f", b"1", b"", T.SUBMIT_JOB_BG)
        assert admin.admin("maxqueue f 1") == b"OK\r\n"
        c.send(T.SUBMIT_JOB_BG, b"f", b"", b"2")
        assert c.expect(T.ERROR) == (b"QUEUE_ERROR", b"Job queue is full")
        assert admin.admin("maxqueue f 0 5 0") == b"OK\r\n"  # HIGH NORMAL LOW
        c.submit(b"f", b"3", b"", T.SUBMIT_JOB_BG)
        assert admin.admin("maxqueue f") == b"OK\r\n"  # no limit
        c.submit(b"f", b"4", b"", T.SUBMIT_JOB_BG)


def test_cancel_job(server: ServerProc) -> None:
    with Wire(server.port) as admin, Wire(server.port) as c, Wire(server.port) as w:
        handle = c.submit(b"f", b"x")
        assert admin.admin(b"cancel job " + handle) == b"OK\r\n"
        assert c.expect(T.WORK_FAIL) == (handle,)
        status = admin.admin("status")
        if server.kind == "gearmand":
            # gearmand_differs: gearmand only marks the job; it still counts.
            assert status == b"f\t1\t0\t0\n.\n"
        else:
            assert status == b"f\t0\t0\t0\n.\n"
        w.send(T.CAN_DO, b"f")
        assert w.grab() is None


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


def test_more_than_five_words_closes_the_connection(server: ServerProc) -> None:
    with Wire(server.port) as admin:
        admin.raw(b"a b c d e f\r\n")
        assert admin.closed_by_server()
    with Wire(server.port) as other:
        assert other.admin("status") == b".\n"
