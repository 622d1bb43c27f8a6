"""Workers' timers on the wire, in real time: CAN_DO_TIMEOUT and epoch jobs (the core's
tests run them on a manual clock; the protocol's scenarios are in test_scenarios.py).
Both servers; where gearmand 1.1 departs from the protocol text the test says so."""

from __future__ import annotations

import time

from serverproc import ServerProc
from wire import T, Wire


def test_can_do_timeout_fails_the_job(server: ServerProc) -> None:
    with Wire(server.port) as c, Wire(server.port) as w:
        w.send(T.CAN_DO_TIMEOUT, b"slow", b"1000")
        handle = c.submit(b"slow", b"x")
        assert w.grab() is not None
        if server.kind == "gearmand":
            # gearmand_differs: gearmand requeues silently instead of failing the job.
            c.expect_nothing(1.5)
            return
        c.expect_nothing(0.7)
        assert c.expect(T.WORK_FAIL, timeout=2) == (handle,)
        w.send(T.WORK_COMPLETE, handle, b"late")
        assert w.expect(T.ERROR) == (b"JOB_NOT_FOUND", b"Job given in work result not found")


def test_can_do_timeout_under_a_second_is_one_second(server: ServerProc) -> None:
    """As gearmand: CAN_DO_TIMEOUT "5" (or "2", from libraries that send seconds)
    gives the worker a second, not 5 ms."""
    with Wire(server.port) as c, Wire(server.port) as w:
        w.send(T.CAN_DO_TIMEOUT, b"slow", b"5")
        handle = c.submit(b"slow", b"x")
        assert w.grab() is not None
        time.sleep(0.3)
        w.send(T.WORK_COMPLETE, handle, b"done")
        assert c.expect(T.WORK_COMPLETE) == (handle, b"done")


def test_epoch_job_runs_when_due_and_wakes_workers(server: ServerProc) -> None:
    with Wire(server.port) as c, Wire(server.port) as w:
        w.send(T.CAN_DO, b"f")
        c.send(T.SUBMIT_JOB_EPOCH, b"f", b"", str(int(time.time()) + 2).encode(), b"later")
        handle = c.expect(T.JOB_CREATED)[0]
        w.sleep()
        noop = w.next(4)
        if server.kind == "gearmand":
            # gearmand_differs: 1.1 never wakes sleeping workers for a due epoch job (#101);
            # it runs only when a worker happens to grab again.
            assert noop is None
            assert w.grab()[0] == handle  # type: ignore[index]
            return
        assert noop is not None and noop.type == T.NOOP
        assert w.grab()[0] == handle  # type: ignore[index]
