"""The server core driven directly where only the core can be: timers on a manual clock,
a store's acknowledgements and restores (the protocol's scenarios run against the core in
test_scenarios.py)."""

from __future__ import annotations

import pytest

from geartrain.server.core import JobServer
from geartrain.store import StoredJob

from .harness import Clock, Conn, ListKeeper, LogKeeper, T, make


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


@pytest.mark.parametrize("registered", [3, 40])
@pytest.mark.parametrize("round_robin", [False, True])
def test_a_worker_of_many_functions_takes_by_priority_then_latest_registration(
    clock: Clock, registered: int, round_robin: bool
) -> None:
    # Fewer and more functions with work than the worker registered: the grab looks
    # through either side, and both must give the same order.
    server = make(clock, round_robin=round_robin)
    client, worker, other = Conn(server, "c"), Conn(server, "w"), Conn(server, "o")
    names = [b"f%02d" % i for i in range(registered)]
    for name in names:
        worker.send(T.CAN_DO, name)
    for i in range(20):
        other.send(T.CAN_DO, b"other%02d" % i)
        client.submit(b"other%02d" % i, b"x", kind=T.SUBMIT_JOB_BG)
    first, last = names[0], names[-1]
    client.submit(first, b"low", kind=T.SUBMIT_JOB_LOW_BG)
    client.submit(first, b"normal", kind=T.SUBMIT_JOB_BG)
    client.submit(last, b"normal", kind=T.SUBMIT_JOB_BG)
    client.submit(first, b"high", kind=T.SUBMIT_JOB_HIGH_BG)
    order = [worker.grab() for _ in range(4)]
    assert [(job[1], job[3]) for job in order if job] == [
        (first, b"high"),
        (last, b"normal"),
        (first, b"normal"),
        (first, b"low"),
    ]
    assert worker.grab() is None
    # Registering again makes a function the most recent one.
    client.submit(last, b"2", kind=T.SUBMIT_JOB_BG)
    client.submit(first, b"2", kind=T.SUBMIT_JOB_BG)
    worker.send(T.CAN_DO, first)
    assert [job[1] for job in (worker.grab(), worker.grab()) if job] == [first, last]
