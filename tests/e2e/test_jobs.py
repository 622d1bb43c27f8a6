"""Jobs on the wire, against geartrain and gearmand alike: submission, results, coalescing,
status, priorities and the small requests.  Raw sockets; exact packets."""

from __future__ import annotations

import socket
import time

import pytest

from geartrain.protocol import REQ, pack
from serverproc import ServerProc
from wire import T, Wire

SUBMITS = [
    (T.SUBMIT_JOB, False),
    (T.SUBMIT_JOB_HIGH, False),
    (T.SUBMIT_JOB_LOW, False),
    (T.SUBMIT_JOB_BG, True),
    (T.SUBMIT_JOB_HIGH_BG, True),
    (T.SUBMIT_JOB_LOW_BG, True),
]


@pytest.mark.parametrize(("ptype", "background"), SUBMITS)
def test_every_submit_variant(server: ServerProc, ptype: T, background: bool) -> None:
    with Wire(server.port) as client, Wire(server.port) as worker:
        worker.send(T.CAN_DO, b"f")
        handle = client.submit(b"f", b"payload\0with nul", b"u1", ptype)
        assert handle.startswith(b"H:") and handle.split(b":")[-1].isdigit()
        assert worker.grab() == (handle, b"f", b"u1", b"payload\0with nul")
        worker.send(T.WORK_COMPLETE, handle, b"result\0bytes")
        if background:
            client.expect_nothing()
        else:
            assert client.expect(T.WORK_COMPLETE) == (handle, b"result\0bytes")


def test_handles_count_new_jobs_only(server: ServerProc) -> None:
    with Wire(server.port) as client:
        first = client.submit(b"f", b"x", b"same", T.SUBMIT_JOB_BG)
        assert client.submit(b"f", b"y", b"same", T.SUBMIT_JOB_BG) == first
        second = client.submit(b"f", b"z", b"", T.SUBMIT_JOB_BG)
        assert int(second.rsplit(b":", 1)[1]) == int(first.rsplit(b":", 1)[1]) + 1
        assert first.rsplit(b":", 1)[0] == b"H:" + socket.gethostname().encode()


def test_job_handle_prefix(start_server) -> None:  # type: ignore[no-untyped-def]
    for kind in ("geartrain", "gearmand"):
        srv = start_server(kind, ["--job-handle-prefix=pfx"])
        with Wire(srv.port) as client:
            assert client.submit(b"f", b"x", b"", T.SUBMIT_JOB_BG) == b"pfx:1"


def test_results_go_to_every_waiting_client(server: ServerProc) -> None:
    with Wire(server.port) as a, Wire(server.port) as b, Wire(server.port) as worker:
        handle = a.submit(b"f", b"x", b"shared")
        assert b.submit(b"f", b"other data", b"shared") == handle
        worker.send(T.CAN_DO, b"f")
        assert worker.grab() == (handle, b"f", b"shared", b"x")
        worker.send(T.WORK_STATUS, handle, b"1", b"4")
        worker.send(T.WORK_DATA, handle, b"chunk")
        worker.send(T.WORK_WARNING, handle, b"careful")
        worker.send(T.WORK_COMPLETE, handle, b"done")
        for client in (a, b):
            assert client.expect(T.WORK_STATUS) == (handle, b"1", b"4")
            assert client.expect(T.WORK_DATA) == (handle, b"chunk")
            assert client.expect(T.WORK_WARNING) == (handle, b"careful")
            assert client.expect(T.WORK_COMPLETE) == (handle, b"done")


def test_coalescing_rules(server: ServerProc) -> None:
    with Wire(server.port) as c:
        bg = c.submit(b"f", b"d", b"k", T.SUBMIT_JOB_BG)
        assert c.submit(b"f", b"other", b"k", T.SUBMIT_JOB_LOW_BG) == bg
        assert c.submit(b"g", b"d", b"k", T.SUBMIT_JOB_BG) != bg  # per function
        assert c.submit(b"f", b"d", b"", T.SUBMIT_JOB_BG) != c.submit(
            b"f", b"d", b"", T.SUBMIT_JOB_BG
        )
        dash = c.submit(b"f", b"same data", b"-", T.SUBMIT_JOB_BG)
        assert c.submit(b"f", b"same data", b"-", T.SUBMIT_JOB_BG) == dash
        assert c.submit(b"f", b"different", b"-", T.SUBMIT_JOB_BG) != dash


def test_foreground_duplicate_of_background_job_gets_results(server: ServerProc) -> None:
    with Wire(server.port) as bg, Wire(server.port) as fg, Wire(server.port) as worker:
        handle = bg.submit(b"f", b"d", b"k", T.SUBMIT_JOB_BG)
        assert fg.submit(b"f", b"d", b"k") == handle
        worker.send(T.CAN_DO, b"f")
        worker.grab()
        worker.send(T.WORK_COMPLETE, handle, b"r")
        assert fg.expect(T.WORK_COMPLETE) == (handle, b"r")


def test_unique_too_long(server: ServerProc) -> None:
    with Wire(server.port) as c:
        c.send(T.SUBMIT_JOB, b"f", b"u" * 65, b"d")
        assert c.expect(T.ERROR) == (b"ARGUMENT_TOO_LARGE", b"Unique value too large")
        assert c.submit(b"f", b"d", b"u" * 63).startswith(b"H:")


def test_priority_order_and_fifo(server: ServerProc) -> None:
    with Wire(server.port) as c, Wire(server.port) as worker:
        for data, ptype in (
            (b"low-1", T.SUBMIT_JOB_LOW_BG),
            (b"normal-1", T.SUBMIT_JOB_BG),
            (b"high-1", T.SUBMIT_JOB_HIGH_BG),
            (b"normal-2", T.SUBMIT_JOB_BG),
            (b"high-2", T.SUBMIT_JOB_HIGH_BG),
            (b"low-2", T.SUBMIT_JOB_LOW_BG),
        ):
            c.submit(b"f", data, b"", ptype)
        worker.send(T.CAN_DO, b"f")
        order = []
        while (job := worker.grab()) is not None:
            order.append(job[3])
            worker.send(T.WORK_COMPLETE, job[0], b"")
        assert order == [b"high-1", b"high-2", b"normal-1", b"normal-2", b"low-1", b"low-2"]


def test_priority_is_global_across_functions(server: ServerProc) -> None:
    with Wire(server.port) as c, Wire(server.port) as worker:
        c.submit(b"a", b"a-low", b"", T.SUBMIT_JOB_LOW_BG)
        c.submit(b"b", b"b-high", b"", T.SUBMIT_JOB_HIGH_BG)
        worker.send(T.CAN_DO, b"b")
        worker.send(T.CAN_DO, b"a")  # registered last: gearmand 1.1 looks here first
        job = worker.grab()
        assert job is not None
        if server.kind == "gearmand":
            # gearmand_differs: 1.1 picks per function (#173); 2.0 and geartrain globally.
            assert job[3] == b"a-low"
        else:
            assert job[3] == b"b-high"


def test_get_status(server: ServerProc) -> None:
    with Wire(server.port) as c, Wire(server.port) as worker:
        handle = c.submit(b"f", b"x", b"su", T.SUBMIT_JOB_BG)
        c.send(T.GET_STATUS, handle)
        assert c.expect(T.STATUS_RES) == (handle, b"1", b"0", b"0", b"0")
        worker.send(T.CAN_DO, b"f")
        worker.grab()
        worker.send(T.WORK_STATUS, handle, b"3", b"7")
        worker.sync()
        c.send(T.GET_STATUS, handle)
        assert c.expect(T.STATUS_RES) == (handle, b"1", b"1", b"3", b"7")
        worker.send(T.WORK_COMPLETE, handle, b"")
        worker.sync()
        c.send(T.GET_STATUS, handle)
        assert c.expect(T.STATUS_RES) == (handle, b"0", b"0", b"0", b"0")
        c.send(T.GET_STATUS, b"H:nowhere:1")
        assert c.expect(T.STATUS_RES) == (b"H:nowhere:1", b"0", b"0", b"0", b"0")


def test_get_status_unique_counts_waiting_clients(server: ServerProc) -> None:
    with Wire(server.port) as a, Wire(server.port) as b, Wire(server.port) as asker:
        a.submit(b"f", b"x", b"key")
        b.submit(b"f", b"x", b"key")
        asker.send(T.GET_STATUS_UNIQUE, b"key")
        assert asker.expect(T.STATUS_RES_UNIQUE) == (b"key", b"1", b"0", b"0", b"0", b"2")
        asker.send(T.GET_STATUS_UNIQUE, b"nope")
        assert asker.expect(T.STATUS_RES_UNIQUE) == (b"nope", b"0", b"0", b"0", b"0", b"0")


def test_exceptions_option(server: ServerProc) -> None:
    with Wire(server.port) as plain, Wire(server.port) as wants, Wire(server.port) as worker:
        wants.send(T.OPTION_REQ, b"exceptions")
        assert wants.expect(T.OPTION_RES) == (b"exceptions",)
        handle = plain.submit(b"f", b"x", b"e")
        wants.submit(b"f", b"x", b"e")
        worker.send(T.CAN_DO, b"f")
        worker.grab()
        worker.send(T.WORK_EXCEPTION, handle, b"boom")
        assert wants.expect(T.WORK_EXCEPTION) == (handle, b"boom")
        fail = plain.expect(T.WORK_FAIL)
        if server.kind == "gearmand":
            # gearmand_differs: gearmand adds a stray NUL that Perl and Python clients reject.
            assert fail == (handle + b"\0",)
        else:
            assert fail == (handle,)
        worker.send(T.WORK_FAIL, handle)  # python-gearman workers send both
        assert worker.expect(T.ERROR) == (b"JOB_NOT_FOUND", b"Job given in work result not found")


def test_exceptions_flag_enables_it_for_everyone(start_server) -> None:  # type: ignore[no-untyped-def]
    for kind in ("geartrain", "gearmand"):
        srv = start_server(kind, ["--exceptions"])
        with Wire(srv.port) as client, Wire(srv.port) as worker:
            handle = client.submit(b"f", b"x")
            worker.send(T.CAN_DO, b"f")
            worker.grab()
            worker.send(T.WORK_EXCEPTION, handle, b"boom")
            assert client.expect(T.WORK_EXCEPTION) == (handle, b"boom")


def test_small_requests(server: ServerProc) -> None:
    with Wire(server.port) as c:
        c.send(T.ECHO_REQ, b"ping\0pong")
        assert c.expect(T.ECHO_RES) == (b"ping\0pong",)
        c.send(T.OPTION_REQ, b"nosuch")
        assert c.expect(T.ERROR) == (b"UNKNOWN_OPTION", b"Server does not recognize given option")
        c.send(T.SET_CLIENT_ID, b"my-id")
        c.send(T.CAN_DO, b"fn")
        assert b" my-id : fn\n" in c.admin("workers")
        c.send(T.ALL_YOURS)
        assert c.expect(T.ERROR) == (b"INVALID_COMMAND", b"Command not expected")
        c.send(T.SUBMIT_JOB_SCHED, b"f", b"", b"1", b"2", b"3", b"4", b"5", b"d")
        if server.kind == "gearmand":
            # gearmand_differs: gearmand never implemented SUBMIT_JOB_SCHED; geartrain
            # schedules the job as the protocol text says.
            assert c.expect(T.ERROR) == (b"INVALID_COMMAND", b"Command not expected")
        else:
            assert c.expect(T.JOB_CREATED)


def test_work_results_need_the_owning_worker(server: ServerProc) -> None:
    with Wire(server.port) as c, Wire(server.port) as w, Wire(server.port) as other:
        handle = c.submit(b"f", b"x")
        w.send(T.CAN_DO, b"f")
        w.grab()
        other.send(T.WORK_DATA, handle, b"x")
        assert other.expect(T.ERROR) == (b"JOB_NOT_FOUND", b"Job does not exist on server")
        other.send(T.WORK_COMPLETE, handle, b"x")
        assert other.expect(T.ERROR) == (b"JOB_NOT_FOUND", b"Job given in work result not found")
        other.send(T.WORK_EXCEPTION, handle, b"x")
        expected = b"An exception was received for a job that does not exist"
        assert other.expect(T.ERROR) == (b"JOB_NOT_FOUND", expected)
        w.send(T.WORK_COMPLETE, handle, b"fine")
        assert c.expect(T.WORK_COMPLETE) == (handle, b"fine")


def test_reduce_jobs_and_grab_job_all(server: ServerProc) -> None:
    with Wire(server.port) as c, Wire(server.port) as w:
        c.send(T.SUBMIT_REDUCE_JOB, b"map", b"u", b"reducer", b"", b"data")
        handle = c.expect(T.JOB_CREATED)[0]
        plain = c.submit(b"map", b"plain", b"", T.SUBMIT_JOB_BG)
        w.send(T.CAN_DO, b"map")
        w.send(T.GRAB_JOB_ALL)
        assert w.expect(T.JOB_ASSIGN_ALL) == (handle, b"map", b"u", b"reducer", b"data")
        w.send(T.GRAB_JOB_ALL)  # no reducer: answered as GRAB_JOB_UNIQ, as gearmand does
        assert w.expect(T.JOB_ASSIGN_UNIQ) == (plain, b"map", b"", b"plain")
        w.send(T.WORK_COMPLETE, handle, b"reduced")
        assert c.expect(T.WORK_COMPLETE) == (handle, b"reduced")
        c.send(T.SUBMIT_REDUCE_JOB_BACKGROUND, b"map", b"u2", b"r", b"", b"d")
        c.expect(T.JOB_CREATED)
        w.send(T.GRAB_JOB)
        assert w.expect(T.JOB_ASSIGN)[1:] == (b"map", b"d")


def test_fg_job_dropped_when_its_clients_leave(server: ServerProc) -> None:
    with Wire(server.port) as watcher, Wire(server.port) as w:
        client = Wire(server.port)
        client.submit(b"gone", b"x")
        client.close()
        if server.kind == "geartrain":
            # The job is gone at once.  (gearmand keeps counting it in `status` until a
            # worker reaches it and discards it.)
            deadline = time.monotonic() + 5
            while watcher.admin("status") != b"gone\t0\t0\t0\n.\n":
                assert time.monotonic() < deadline
                time.sleep(0.01)
        else:
            time.sleep(0.3)  # gearmand handles the disconnect on another thread
        w.send(T.CAN_DO, b"gone")
        assert w.grab() is None


def test_large_payloads_back_to_back(server: ServerProc) -> None:
    """Megabyte packets sent together, so one read ends inside the next one's header."""
    payloads = [bytes([i]) * (1_000_000 + 7 * i) for i in range(1, 6)]
    with Wire(server.port) as c, Wire(server.port) as w:
        w.send(T.CAN_DO, b"big")
        w.sync()
        c.raw(b"".join(pack(REQ, T.SUBMIT_JOB_BG, (b"big", b"", p)) for p in payloads))
        handles = [c.expect(T.JOB_CREATED, timeout=10)[0] for _ in payloads]
        got = []
        for _ in payloads:
            job = w.grab()
            assert job is not None
            got.append(job[3])
            w.send(T.WORK_COMPLETE, job[0], job[3])
        assert got == payloads and len(set(handles)) == 5
        c.send(T.ECHO_REQ, b"x" * 3_000_000)
        assert c.expect(T.ECHO_RES, timeout=10) == (b"x" * 3_000_000,)
