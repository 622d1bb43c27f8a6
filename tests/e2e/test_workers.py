"""Workers on the wire: wake-ups, round robin, losing jobs and retries, timeouts, epoch jobs.
Both servers; where gearmand 1.1 departs from the protocol text the test says so."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from serverproc import ServerProc
from wire import T, Wire

Start = Callable[..., ServerProc]


def test_one_noop_per_sleeping_worker(server: ServerProc) -> None:
    with Wire(server.port) as c, Wire(server.port) as w, Wire(server.port) as idle:
        w.send(T.CAN_DO, b"f")
        idle.send(T.CAN_DO, b"unrelated")
        w.sleep()
        idle.sleep()
        w.sync()
        idle.sync()
        c.submit(b"f", b"1")
        c.submit(b"f", b"2")
        assert w.expect(T.NOOP) == ()
        w.expect_nothing()  # a second job does not NOOP an already woken worker
        idle.expect_nothing()
        w.send(T.PRE_SLEEP)  # work is waiting: woken at once
        assert w.expect(T.NOOP) == ()


def test_sleeping_worker_woken_when_it_gains_a_function_with_jobs(server: ServerProc) -> None:
    for ptype, *args in ((T.CAN_DO, b"f"), (T.CAN_DO_TIMEOUT, b"f", b"5000")):
        with Wire(server.port) as c, Wire(server.port) as w:
            c.submit(b"f", b"queued", b"", T.SUBMIT_JOB_BG)
            w.send(T.PRE_SLEEP)  # asleep before it registers anything (aiogear does this)
            w.expect_nothing()
            w.send(ptype, *args)
            if server.kind == "gearmand":
                # gearmand_differs: no NOOP; the worker waits for the next submission.
                w.expect_nothing()
                continue
            assert w.expect(T.NOOP) == (), ptype
            assert w.grab()[3] == b"queued"  # type: ignore[index]


def test_worker_wakeup_limits_noops(start_server: Start) -> None:
    for kind in ("geartrain", "gearmand"):
        srv = start_server(kind, ["--worker-wakeup=1"])
        with Wire(srv.port) as c, Wire(srv.port) as a, Wire(srv.port) as b:
            for w in (a, b):
                w.send(T.CAN_DO, b"f")
                w.sleep()
                w.sync()
            c.submit(b"f", b"x", b"", T.SUBMIT_JOB_BG)
            woken = [w for w in (a, b) if w.next(0.3) is not None]
            assert len(woken) == 1, kind


def test_round_robin(start_server: Start) -> None:
    for kind in ("geartrain", "gearmand"):
        srv = start_server(kind, ["--round-robin"])
        with Wire(srv.port) as c, Wire(srv.port) as w:
            for name in (b"a", b"a", b"b", b"b"):
                c.submit(name, name, b"", T.SUBMIT_JOB_BG)
            w.send(T.CAN_DO, b"a")
            w.send(T.CAN_DO, b"b")
            got = []
            while (job := w.grab()) is not None:
                got.append(job[1])
            assert got == [b"b", b"a", b"b", b"a"], kind


@pytest.mark.parametrize("how", ["disconnect", "cant_do", "reset"])
def test_lost_job_is_requeued_at_the_tail(server: ServerProc, how: str) -> None:
    with Wire(server.port) as c, Wire(server.port) as w2:
        first = c.submit(b"f", b"first")
        second = c.submit(b"f", b"second")
        w1 = Wire(server.port)
        w1.send(T.CAN_DO, b"f")
        assert w1.grab() is not None
        w1.send(T.WORK_STATUS, first, b"1", b"2")
        assert c.expect(T.WORK_STATUS) == (first, b"1", b"2")
        if how == "disconnect":
            w1.close()
        else:
            w1.send(
                T.CANT_DO if how == "cant_do" else T.RESET_ABILITIES,
                *([b"f"] if how == "cant_do" else []),
            )
            w1.sync()
        time.sleep(0.2)  # gearmand handles a disconnect on another thread
        w2.send(T.CAN_DO, b"f")
        assert w2.grab()[0] == second  # type: ignore[index]
        assert w2.grab()[0] == first  # type: ignore[index]
        c.send(T.GET_STATUS, first)
        assert c.expect(T.STATUS_RES) == (first, b"1", b"1", b"0", b"0")  # progress reset
        w2.send(T.WORK_COMPLETE, first, b"ok")
        assert c.expect(T.WORK_COMPLETE) == (first, b"ok")
        if how != "disconnect":
            w1.close()


def attempts(port: int, limit: int = 6) -> tuple[int, bool]:
    """Run the job on workers that die; return (attempts, whether the client got WORK_FAIL)."""
    with Wire(port) as c:
        handle = c.submit(b"f", b"x")
        ran = 0
        for _ in range(limit):
            with Wire(port) as w:
                w.send(T.CAN_DO, b"f")
                if w.grab() is None:
                    break
                ran += 1
            time.sleep(0.1)
        packet = c.next(0.5)
        failed = packet is not None and packet.type == T.WORK_FAIL and packet.args[0] == handle
        return ran, failed


@pytest.mark.parametrize(
    ("retries", "geartrain", "gearmand"),
    [
        ("2", (2, True), (2, True)),
        ("1", (1, True), (1, True)),
        # gearmand_differs: 1.1 reads 0 as "no limit"; 2.0 and geartrain as "no retries".
        ("0", (1, True), (6, False)),
    ],
)
def test_job_retries(
    start_server: Start, retries: str, geartrain: tuple[int, bool], gearmand: tuple[int, bool]
) -> None:
    for kind, expected in (("geartrain", geartrain), ("gearmand", gearmand)):
        srv = start_server(kind, [f"--job-retries={retries}"])
        assert attempts(srv.port) == expected, kind


def test_unlimited_retries_by_default(geartrain: ServerProc) -> None:
    assert attempts(geartrain.port) == (6, False)


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


def test_epoch_in_the_past_runs_now(server: ServerProc) -> None:
    with Wire(server.port) as c, Wire(server.port) as w:
        c.send(T.SUBMIT_JOB_EPOCH, b"f", b"", b"1000", b"now")
        handle = c.expect(T.JOB_CREATED)[0]
        w.send(T.CAN_DO, b"f")
        assert w.grab() == (handle, b"f", b"", b"now")
