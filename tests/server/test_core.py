"""The server core driven directly: peers are recorders, timers a manual clock."""

from __future__ import annotations

import pytest

from geartrain.protocol import REQ, RES, Packet
from geartrain.server.core import JobServer
from geartrain.store import StoredJob

from .harness import Clock, Conn, ListKeeper, LogKeeper, PacketType, T, make


def test_round_trip(server: JobServer) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"rev")
    handle = client.submit(b"rev", b"abc")
    assert handle == b"H:test:1"
    assert worker.grab() == (handle, b"rev", b"", b"abc")
    worker.send(T.WORK_COMPLETE, handle, b"cba")
    assert client.one(T.WORK_COMPLETE) == (handle, b"cba")
    assert server.jobs == {}


def test_priorities_then_fifo(server: JobServer) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    client.submit(b"f", b"low1", kind=T.SUBMIT_JOB_LOW_BG)
    client.submit(b"f", b"n1", kind=T.SUBMIT_JOB_BG)
    client.submit(b"f", b"high1", kind=T.SUBMIT_JOB_HIGH_BG)
    client.submit(b"f", b"n2", kind=T.SUBMIT_JOB_BG)
    client.submit(b"f", b"high2", kind=T.SUBMIT_JOB_HIGH_BG)
    order = []
    while (job := worker.grab()) is not None:
        order.append(job[3])
        worker.send(T.WORK_COMPLETE, job[0], b"")
    assert order == [b"high1", b"high2", b"n1", b"n2", b"low1"]


def test_priority_is_global_across_a_workers_functions(server: JobServer) -> None:
    # gearmand 1.1 would hand out b's LOW job first (b was registered last).
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"a")
    worker.send(T.CAN_DO, b"b")
    client.submit(b"b", b"low", kind=T.SUBMIT_JOB_LOW_BG)
    client.submit(b"a", b"high", kind=T.SUBMIT_JOB_HIGH_BG)
    assert worker.grab()[3] == b"high"  # type: ignore[index]


def test_round_robin_rotates_functions(clock: Clock) -> None:
    def order(round_robin: bool) -> list[bytes]:
        server = make(clock, round_robin=round_robin)
        client, worker = Conn(server, "c"), Conn(server, "w")
        worker.send(T.CAN_DO, b"a")
        worker.send(T.CAN_DO, b"b")
        for name in (b"a", b"a", b"b", b"b"):
            client.submit(name, name, kind=T.SUBMIT_JOB_BG)
        got = []
        while (job := worker.grab()) is not None:
            got.append(job[1])
        return got

    assert order(False) == [b"b", b"b", b"a", b"a"]  # most recent CAN_DO first, as gearmand
    assert order(True) == [b"b", b"a", b"b", b"a"]


def test_unique_coalescing(server: JobServer) -> None:
    c1, c2, c3, worker = Conn(server, "1"), Conn(server, "2"), Conn(server, "3"), Conn(server, "w")
    h1 = c1.submit(b"f", b"data", b"u1")
    assert c2.submit(b"f", b"other data", b"u1") == h1  # foreground duplicate attaches
    assert c3.submit(b"f", b"x", b"u1", kind=T.SUBMIT_JOB_BG) == h1  # background: same handle
    assert c1.submit(b"g", b"data", b"u1") != h1  # scope is the function
    assert c1.submit(b"f", b"data") != c1.submit(b"f", b"data")  # empty unique never coalesces
    dash = c1.submit(b"f", b"same", b"-")
    assert c2.submit(b"f", b"same", b"-") == dash
    assert c2.submit(b"f", b"different", b"-") != dash
    assert c2.submit(b"f", b"", b"-") != c2.submit(b"f", b"", b"-")  # no data never coalesces
    worker.send(T.CAN_DO, b"f")
    job = worker.grab()
    assert job is not None and job[0] == h1 and job[3] == b"data"
    worker.send(T.WORK_STATUS, h1, b"1", b"2")
    worker.send(T.WORK_COMPLETE, h1, b"done")
    for client in (c1, c2):
        packets = [p for p in client.received() if p[1][0] == h1]
        assert packets == [(T.WORK_STATUS, (h1, b"1", b"2")), (T.WORK_COMPLETE, (h1, b"done"))]
    assert c3.received() == []


def test_status_unique_counts_waiting_clients(server: JobServer) -> None:
    c1, c2, asker = Conn(server, "1"), Conn(server, "2"), Conn(server, "a")
    c1.submit(b"f", b"d", b"key")
    c2.submit(b"f", b"d", b"key")
    asker.send(T.GET_STATUS_UNIQUE, b"key")
    assert asker.one(T.STATUS_RES_UNIQUE) == (b"key", b"1", b"0", b"0", b"0", b"2")
    asker.send(T.GET_STATUS_UNIQUE, b"nope")
    assert asker.one(T.STATUS_RES_UNIQUE) == (b"nope", b"0", b"0", b"0", b"0", b"0")


def test_worker_loss_requeues_at_the_tail(server: JobServer) -> None:
    client, w1, w2 = Conn(server, "c"), Conn(server, "w1"), Conn(server, "w2")
    for w in (w1, w2):
        w.send(T.CAN_DO, b"f")
    first = client.submit(b"f", b"1")
    second = client.submit(b"f", b"2")
    assert w1.grab()[0] == first  # type: ignore[index]
    w1.send(T.WORK_STATUS, first, b"5", b"10")
    w1.leave()
    assert w2.grab()[0] == second  # type: ignore[index]
    assert w2.grab()[0] == first  # type: ignore[index]
    w2.send(T.WORK_COMPLETE, first, b"ok")
    assert client.received()[-1] == (T.WORK_COMPLETE, (first, b"ok"))


@pytest.mark.parametrize(("retries", "attempts"), [(0, 1), (1, 1), (3, 3), (-1, 10)])
def test_job_retries(clock: Clock, retries: int, attempts: int) -> None:
    server = make(clock, job_retries=retries)
    client = Conn(server, "c")
    handle = client.submit(b"f", b"x")
    ran = 0
    for _ in range(10):
        worker = Conn(server, "w")
        worker.send(T.CAN_DO, b"f")
        if worker.grab() is None:
            break
        ran += 1
        worker.send(T.CANT_DO, b"f") if ran % 2 else worker.leave()
    assert ran == attempts
    if retries >= 0:
        assert client.one(T.WORK_FAIL) == (handle,)
        assert server.jobs == {}


def test_foreground_job_dropped_when_its_clients_leave(server: JobServer) -> None:
    c1, c2, worker = Conn(server, "1"), Conn(server, "2"), Conn(server, "w")
    c1.submit(b"f", b"x", b"u")
    c2.submit(b"f", b"x", b"u")
    c1.leave()
    assert len(server.jobs) == 1
    c2.leave()
    assert server.jobs == {} and server.functions[b"f"].total == 0
    worker.send(T.CAN_DO, b"f")
    assert worker.grab() is None


def test_background_job_survives_its_submitter(server: JobServer) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    client.submit(b"f", b"x", kind=T.SUBMIT_JOB_BG)
    client.leave()
    worker.send(T.CAN_DO, b"f")
    assert worker.grab() is not None


def test_foreground_duplicate_of_background_job_leaving_keeps_it(server: JobServer) -> None:
    # gearmand drops the background job here (reference §2.3, a bug).
    bg, fg, worker = Conn(server, "b"), Conn(server, "f"), Conn(server, "w")
    handle = bg.submit(b"f", b"x", b"u", kind=T.SUBMIT_JOB_BG)
    assert fg.submit(b"f", b"x", b"u") == handle
    fg.leave()
    worker.send(T.CAN_DO, b"f")
    assert worker.grab()[0] == handle  # type: ignore[index]


def test_can_do_timeout_fails_the_job(server: JobServer, clock: Clock) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO_TIMEOUT, b"slow", b"1500")
    handle = client.submit(b"slow", b"x")
    assert worker.grab() is not None
    clock.advance(1.0)
    assert client.received() == []
    clock.advance(1.0)
    assert client.one(T.WORK_FAIL) == (handle,)
    worker.send(T.WORK_COMPLETE, handle, b"late")
    assert worker.one(T.ERROR) == (b"JOB_NOT_FOUND", b"Job given in work result not found")


def test_completed_job_timer_is_cancelled(server: JobServer, clock: Clock) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO_TIMEOUT, b"f", b"1000")
    handle = client.submit(b"f", b"x")
    worker.grab()
    worker.send(T.WORK_COMPLETE, handle, b"r")
    clock.advance(5)
    assert client.received() == [(T.WORK_COMPLETE, (handle, b"r"))]


def test_exceptions_only_to_clients_that_asked(server: JobServer) -> None:
    plain, wants, worker = Conn(server, "p"), Conn(server, "e"), Conn(server, "w")
    wants.send(T.OPTION_REQ, b"Exceptions")
    assert wants.one(T.OPTION_RES) == (b"Exceptions",)
    handle = plain.submit(b"f", b"x", b"u")
    wants.submit(b"f", b"x", b"u")
    worker.send(T.CAN_DO, b"f")
    worker.grab()
    worker.send(T.WORK_EXCEPTION, handle, b"boom")
    assert wants.one(T.WORK_EXCEPTION) == (handle, b"boom")
    assert plain.one(T.WORK_FAIL) == (handle,)  # no stray NUL, unlike gearmand


def test_one_noop_per_sleeping_worker(server: JobServer) -> None:
    client, worker, idle = Conn(server, "c"), Conn(server, "w"), Conn(server, "i")
    worker.send(T.CAN_DO, b"f")
    idle.send(T.CAN_DO, b"other")
    for w in (worker, idle):
        assert w.grab() is None
        w.send(T.PRE_SLEEP)
    client.submit(b"f", b"1")
    client.submit(b"f", b"2")
    assert worker.received() == [(T.NOOP, ())]
    assert idle.received() == []
    worker.send(T.PRE_SLEEP)  # work is waiting: woken at once
    assert worker.received() == [(T.NOOP, ())]


@pytest.mark.parametrize(
    ("ptype", "args"),
    [(T.CAN_DO, (b"f",)), (T.CAN_DO_TIMEOUT, (b"f", b"5000"))],
    ids=["can_do", "can_do_timeout"],
)
def test_sleeping_worker_woken_when_it_gains_a_function_with_jobs(
    server: JobServer, ptype: PacketType, args: tuple[bytes, ...]
) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    client.submit(b"f", b"1", kind=T.SUBMIT_JOB_BG)
    client.submit(b"g", b"2", kind=T.SUBMIT_JOB_BG)
    worker.send(T.CAN_DO, b"idle")
    worker.send(T.PRE_SLEEP)  # asleep before registering the functions with work
    assert worker.received() == []
    worker.send(ptype, *args)
    assert worker.received() == [(T.NOOP, ())]
    worker.send(T.CAN_DO, b"g")  # already woken: one NOOP until the next grab
    assert worker.received() == []
    assert worker.grab() is not None
    assert worker.grab() is not None
    assert worker.grab() is None
    worker.send(T.PRE_SLEEP)
    worker.send(T.CAN_DO, b"h")  # nothing queued: no NOOP, until a job comes
    assert worker.received() == []
    client.submit(b"h", b"3", kind=T.SUBMIT_JOB_BG)
    assert worker.received() == [(T.NOOP, ())]


def test_worker_wakeup_limits_noops(clock: Clock) -> None:
    server = make(clock, worker_wakeup=1)
    client = Conn(server, "c")
    workers = [Conn(server, f"w{i}") for i in range(3)]
    for w in workers:
        w.send(T.CAN_DO, b"f")
        w.grab()
        w.send(T.PRE_SLEEP)
    client.submit(b"f", b"1")
    assert [len(w.received()) for w in workers] == [1, 0, 0]
    client.submit(b"f", b"2")
    assert [len(w.received()) for w in workers] == [0, 1, 0]


def test_epoch_job_waits_and_wakes_workers(server: JobServer, clock: Clock) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    client.send(T.SUBMIT_JOB_EPOCH, b"f", b"", str(int(clock.now) + 60).encode(), b"later")
    handle = client.one(T.JOB_CREATED)[0]
    assert worker.grab() is None
    worker.send(T.PRE_SLEEP)
    clock.advance(59)
    assert worker.received() == []
    clock.advance(1)
    assert worker.received() == [(T.NOOP, ())]
    assert worker.grab()[0] == handle  # type: ignore[index]


def test_maxqueue_refuses_new_jobs(server: JobServer) -> None:
    client = Conn(server, "c")
    client.submit(b"f", b"1", b"u")
    server.functions[b"f"].max_queue = (1, 1, 1)
    client.send(T.SUBMIT_JOB_BG, b"f", b"", b"2")
    assert client.one(T.ERROR) == (b"QUEUE_ERROR", b"Job queue is full")
    client.submit(b"f", b"1", b"u")  # a duplicate is not a new job


def test_cancel_removes_a_queued_job(server: JobServer) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    handle = client.submit(b"f", b"x")
    assert server.cancel(handle)
    assert client.one(T.WORK_FAIL) == (handle,)
    assert server.functions[b"f"].total == 0
    worker.send(T.CAN_DO, b"f")
    assert worker.grab() is None
    assert not server.cancel(handle)


def test_errors_for_bad_requests(server: JobServer) -> None:
    conn = Conn(server, "x")
    conn.requests.packet(conn.peer, Packet(RES, T.SUBMIT_JOB, (b"f", b"", b"")))
    assert conn.one(T.ERROR) == (b"INVALID_MAGIC", b"Request magic expected")
    for ptype in (T.NOOP, T.JOB_CREATED, T.ALL_YOURS, T.UNUSED, T.ECHO_RES):
        conn.requests.packet(conn.peer, Packet(REQ, ptype, ()))
        assert conn.one(T.ERROR) == (b"INVALID_COMMAND", b"Command not expected")
    conn.send(T.SUBMIT_JOB, b"f", b"u" * 65, b"")
    assert conn.one(T.ERROR) == (b"ARGUMENT_TOO_LARGE", b"Unique value too large")
    conn.send(T.WORK_DATA, b"H:nope", b"x")
    assert conn.one(T.ERROR) == (b"JOB_NOT_FOUND", b"Job does not exist on server")
    conn.send(T.OPTION_REQ, b"nonsense")
    assert conn.one(T.ERROR) == (b"UNKNOWN_OPTION", b"Server does not recognize given option")
    conn.requests.packet(conn.peer, Packet(REQ, T.SUBMIT_JOB, (b"f",)))
    assert conn.one(T.ERROR)[0] == b"INVALID_PACKET"


def test_a_job_stored_at_once_is_acknowledged_at_once(server: JobServer) -> None:
    persister = server.keeper = LogKeeper()
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    handle = client.submit(b"f", b"x", b"u", T.SUBMIT_JOB_BG)
    [job] = persister.logged
    assert job.handle == handle and job.store_id and persister.added == []
    assert worker.grab()[0] == handle  # type: ignore[index]
    worker.send(T.WORK_COMPLETE, handle, b"")
    assert persister.done_ids == [job.store_id]


def test_background_job_acknowledged_only_once_stored(server: JobServer) -> None:
    persister = server.keeper = ListKeeper()
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    client.send(T.SUBMIT_JOB_BG, b"f", b"u", b"x")
    assert client.received() == []
    assert worker.grab() is None  # not runnable before the commit
    [job] = persister.added
    server.stored(job)
    handle = client.one(T.JOB_CREATED)[0]
    assert worker.grab()[0] == handle  # type: ignore[index]
    worker.send(T.WORK_COMPLETE, handle, b"")
    assert persister.done_ids == [job.store_id]


def test_answers_wait_behind_an_acknowledgement_owed(server: JobServer) -> None:
    # A pipelining client matches JOB_CREATED to its submissions by order: a foreground
    # job's must not overtake that of a background job still waiting for the store.
    persister = server.keeper = ListKeeper()
    client = Conn(server, "c")
    client.send(T.SUBMIT_JOB_BG, b"f", b"a", b"x")
    client.send(T.SUBMIT_JOB, b"f", b"b", b"y")
    client.send(T.ECHO_REQ, b"ping")
    client.send(T.SUBMIT_JOB_BG, b"f", b"c", b"z")
    assert client.received() == []
    first, second = persister.added
    server.stored(second)  # commits may come back in any order
    assert client.received() == []
    server.stored(first)
    answers = client.received()
    assert [p[0] for p in answers] == [T.JOB_CREATED, T.JOB_CREATED, T.ECHO_RES, T.JOB_CREATED]
    handles = [args[0] for ptype, args in answers if ptype == T.JOB_CREATED]
    assert [server.jobs[h].data for h in handles] == [b"x", b"y", b"z"]
    client.send(T.ECHO_REQ, b"again")  # nothing owed any more: answered at once
    assert client.one(T.ECHO_RES) == (b"again",)


def test_an_answer_owed_to_a_refused_job_keeps_its_place(server: JobServer) -> None:
    persister = server.keeper = ListKeeper()
    client = Conn(server, "c")
    client.send(T.SUBMIT_JOB_BG, b"f", b"a", b"x")
    client.send(T.SUBMIT_JOB, b"f", b"b", b"y")
    server.store_failed(persister.added[0], b"disk full")
    assert [p[0] for p in client.received()] == [T.ERROR, T.JOB_CREATED]


def test_store_failure_refuses_the_job(server: JobServer) -> None:
    persister = server.keeper = ListKeeper()
    client = Conn(server, "c")
    client.send(T.SUBMIT_JOB_BG, b"f", b"u", b"x")
    server.store_failed(persister.added[0], b"disk full")
    assert client.one(T.ERROR) == (b"QUEUE_ERROR", b"disk full")
    assert server.jobs == {} and server.functions[b"f"].total == 0
    client.submit(b"f", b"x", b"u")  # foreground work goes on


def test_restore_keeps_order_priority_and_epoch(server: JobServer, clock: Clock) -> None:
    count = server.restore(
        [
            StoredJob(5, b"f", b"a", b"1", 2),
            StoredJob(7, b"f", b"b", b"2", 0),
            StoredJob(9, b"f", b"c", b"3", 2),
            StoredJob(11, b"f", b"d", b"4", 1, when=int(clock.now) + 100),
        ]
    )
    assert count == 4
    worker = Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    got = []
    while (job := worker.grab()) is not None:
        got.append(job[2])
    assert got == [b"b", b"a", b"c"]
    clock.advance(100)
    assert worker.grab()[2] == b"d"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "strtol", "atoi"),
    [
        (b"", 0, 0),
        (b" -5x", -5, -5),
        (b"+7", 7, 7),
        (b"abc", 0, 0),
        (b"0" * 40 + b"12", 12, 12),
        (b"9223372036854775807", 2**63 - 1, 2**63 - 1),
        (b"9223372036854775808", None, 2**63 - 1),
        (b"-9223372036854775808", -(2**63), -(2**63)),
        (b"-9223372036854775809", None, -(2**63)),
        (b"9" * 30, None, 2**63 - 1),
        (b"1" * 65, None, 2**63 - 1),  # longer than any number is read
    ],
)
def test_c_numbers(text: bytes, strtol: int | None, atoi: int) -> None:
    from geartrain.server.replies import c_atoi, c_strtol

    assert c_strtol(text) == strtol
    assert c_atoi(text) == atoi


def test_round_robin_rotates_with_ranks(clock: Clock) -> None:
    server = make(clock, round_robin=True)
    client, worker = Conn(server, "c"), Conn(server, "w")
    for name in (b"a", b"b", b"c"):
        worker.send(T.CAN_DO, name)
    for name in (b"a", b"b", b"c"):
        for i in range(2):
            client.submit(name, b"%s%d" % (name, i), kind=T.SUBMIT_JOB_BG)
    order = []
    while (job := worker.grab()) is not None:
        order.append(job[3])
        worker.send(T.WORK_COMPLETE, job[0], b"")
    # Most recent registration first, then each function that ran goes to the back.
    assert order == [b"c0", b"b0", b"a0", b"c1", b"b1", b"a1"]
    assert server.queues.ready == {}
