"""Retries, the failed-job set, SUBMIT_JOB_SCHED and recurring schedules, in the core.

The core runs on the manual clock of test_core, so backoffs and cron minutes
are checked exactly and instantly."""

from __future__ import annotations

import calendar

import pytest

from geartrain.protocol import PacketType
from geartrain.server.admin import AdminCommands
from geartrain.server.core import JobServer
from geartrain.server.model import Job, JobState, Peer
from geartrain.server.settings import parse_settings
from geartrain.store import StoredJob

from .harness import RETRY_FLAKY, Clock, Conn, ListKeeper, configured, make, resolved, run_job

T = PacketType


def test_background_failure_is_retried_with_growing_gaps_then_kept(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.SET_CLIENT_ID, b"worker-7")
    worker.send(T.CAN_DO, b"flaky")
    handle = client.submit(b"flaky", b"payload", b"u1", T.SUBMIT_JOB_BG)
    assert run_job(worker, T.WORK_FAIL) == handle
    job = server.jobs[handle]
    assert (job.state, job.when) == (JobState.SCHEDULED, clock.now + 10)
    client.send(T.GET_STATUS, handle)
    assert client.one(T.STATUS_RES) == (handle, b"1", b"0", b"0", b"0")  # known, not running
    clock.advance(9.9)
    assert worker.grab() is None
    clock.advance(0.1)
    assert run_job(worker, T.WORK_EXCEPTION, b"boom") == handle
    assert server.jobs[handle].when == clock.now + 20  # twice the first wait
    clock.advance(20)
    assert run_job(worker, T.WORK_FAIL) == handle
    assert handle not in server.jobs
    [record] = resolved(server.failed.records())
    assert (record.handle, record.function, record.unique, record.data) == (
        handle,
        b"flaky",
        b"u1",
        b"payload",
    )
    assert record.attempts == 3 and record.reason == "fail"
    assert [a.kind for a in record.outcomes] == ["fail", "exception", "fail"]
    assert record.outcomes[1].message == "boom" and record.outcomes[1].worker == "worker-7"
    assert server.failed.counts() == {b"flaky": 1}


def test_defaults_keep_gearmands_behaviour_and_keep_the_failed_job(clock: Clock) -> None:
    server = make(clock)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    handle = client.submit(b"f", b"x", kind=T.SUBMIT_JOB_BG)
    run_job(worker, T.WORK_EXCEPTION, b"bad input")
    assert handle not in server.jobs  # not retried
    [record] = resolved(server.failed.records())
    assert record.reason == "exception: bad input" and record.attempts == 1


def test_lost_worker_counts_as_worker_lost(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    client = Conn(server, "c")
    handle = client.submit(b"flaky", b"x", kind=T.SUBMIT_JOB_BG)
    for _ in range(3):
        worker = Conn(server, "w")
        worker.send(T.CAN_DO, b"flaky")
        clock.advance(100)
        assert worker.grab() is not None
        worker.leave()
    [record] = resolved(server.failed.records())
    assert record.handle == handle and record.reason.startswith("worker_lost")


def test_job_retries_flag_still_governs_lost_workers_and_keeps_the_job(clock: Clock) -> None:
    server = make(clock, job_retries=2)
    client = Conn(server, "c")
    handle = client.submit(b"f", b"x", kind=T.SUBMIT_JOB_BG)
    for _ in range(2):
        worker = Conn(server, "w")
        worker.send(T.CAN_DO, b"f")
        assert worker.grab() is not None  # requeued at once, no backoff
        worker.leave()
    [record] = resolved(server.failed.records())
    assert record.handle == handle and record.attempts == 2


def test_timeout_requeues_with_a_policy_and_fails_without(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO_TIMEOUT, b"flaky", b"1000")
    worker.send(T.CAN_DO_TIMEOUT, b"other", b"1000")
    retried = client.submit(b"flaky", b"x", kind=T.SUBMIT_JOB_BG)
    assert worker.grab() is not None
    clock.advance(1)
    assert server.jobs[retried].state is JobState.SCHEDULED
    failed = client.submit(b"other", b"y")
    clock.advance(10)
    assert {worker.grab()[0], worker.grab()[0]} == {retried, failed}  # type: ignore[index]
    clock.advance(1)
    assert server.jobs[retried].failures == 2
    assert client.one(T.WORK_FAIL) == (failed,)  # foreground, no policy: fails as PROTOCOL says


def test_policy_timeout_applies_to_workers_without_can_do_timeout(clock: Clock) -> None:
    server = configured(clock, {"defaults": {"timeout": 5}})
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    handle = client.submit(b"f", b"x", kind=T.SUBMIT_JOB_BG)
    assert worker.grab() is not None
    clock.advance(5)
    [record] = resolved(server.failed.records())
    assert record.handle == handle and record.reason.startswith("timeout")


def test_retry_failed_runs_it_again_under_its_handle(clock: Clock) -> None:
    server = make(clock)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    handle = client.submit(b"f", b"x", b"u", T.SUBMIT_JOB_BG)
    run_job(worker, T.WORK_FAIL)
    assert resolved(server.failed.retry(handle))
    assert not resolved(server.failed.records())
    job = worker.grab()
    assert job is not None and job[0] == handle and job[2] == b"u"
    worker.send(T.WORK_COMPLETE, handle, b"ok")
    assert not server.jobs and not resolved(server.failed.records())


def test_failed_set_is_bounded_by_count_and_age(clock: Clock) -> None:
    server = configured(clock, {"failed": {"max_jobs": 2, "max_age": 150}})
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    handles = []
    for i in range(3):
        handles.append(client.submit(b"f", str(i).encode(), kind=T.SUBMIT_JOB_BG))
        run_job(worker, T.WORK_FAIL)
        clock.advance(60)
    assert [r.handle for r in resolved(server.failed.records())] == handles[1:]
    clock.advance(50)  # the second is 170 s old, the third 110 s
    assert [r.handle for r in resolved(server.failed.records())] == handles[2:]


def test_keep_failed_false_drops_them(clock: Clock) -> None:
    server = configured(clock, {"defaults": {"keep_failed": False}})
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    client.submit(b"f", b"x", kind=T.SUBMIT_JOB_BG)
    run_job(worker, T.WORK_FAIL)
    assert resolved(server.failed.records()) == []


def test_admin_commands(clock: Clock) -> None:
    server = make(clock)
    admin = AdminCommands(server, lambda: "NOTICE")
    peer = Peer(lambda data: None, lambda: None, loopback=True)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"a")
    worker.send(T.CAN_DO, b"b")
    first = client.submit(b"a", b"1", b"ua", T.SUBMIT_JOB_BG)
    run_job(worker, T.WORK_EXCEPTION, b"tab\there")
    second = client.submit(b"b", b"2", b"ub", T.SUBMIT_JOB_BG)
    run_job(worker, T.WORK_FAIL)
    epoch = b"%d" % int(clock.now)
    assert resolved(admin.line(peer, b"show failed jobs")) == (
        first
        + b"\ta\tua\t1\t"
        + epoch
        + b"\texception: tab here\n"
        + second
        + b"\tb\tub\t1\t"
        + epoch
        + b"\tfail\n.\n"
    )
    assert (
        resolved(admin.line(peer, b"show failed jobs b"))
        == second + b"\tb\tub\t1\t" + epoch + b"\tfail\n.\n"
    )
    assert resolved(admin.line(peer, b"delete failed nosuch")) == b"ERR UNKNOWN_JOB\r\n"
    assert resolved(admin.line(peer, b"retry failed")) == (
        b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+retry\r\n"
    )
    assert resolved(admin.line(peer, b"delete failed " + first)) == b"OK\r\n"
    assert resolved(admin.line(peer, b"retry failed all a")) == b"OK 0\n"
    assert resolved(admin.line(peer, b"retry failed all")) == b"OK 1\n"
    assert worker.grab()[0] == second  # type: ignore[index]
    assert resolved(admin.line(peer, b"show failed jobs")) == b".\n"


def test_restored_retry_keeps_handle_attempts_and_outcomes(clock: Clock) -> None:
    server = make(clock)
    outcomes = '[["fail", "", "w1", 5.0]]'
    server.restore(
        [
            StoredJob(4, b"f", b"u", b"d", 1, 0, b"H:test:41", 2, outcomes),
            StoredJob(5, b"g", b"", b"e", 1),  # written before handles were kept
        ]
    )
    job = server.jobs[b"H:test:41"]
    assert (job.store_id, job.failures, job.outcomes[0].worker) == (4, 2, "w1")
    assert set(server.jobs) == {b"H:test:41", b"H:test:42"}  # new handles go past kept ones


# -- SUBMIT_JOB_SCHED and recurring schedules -----------------------------------

# 2026-12-01 23:15:30 UTC, a Tuesday.
NOW = calendar.timegm((2026, 12, 1, 23, 15, 30, 0, 0, 0))


def at(*fields: int) -> int:
    return calendar.timegm((*fields, 0, 0, 0, 0)[:9])


def sched(server: JobServer, client: Conn, *fields: bytes) -> bytes:
    client.send(T.SUBMIT_JOB_SCHED, b"f", b"", *fields, b"data")
    return client.one(T.JOB_CREATED)[0]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ((b"16", b"", b"", b"", b""), at(2026, 12, 1, 23, 16)),  # a minute ahead
        ((b"", b"", b"", b"", b""), 0),  # every field empty: this minute, at once
        ((b"15", b"23", b"", b"", b""), 0),  # this very minute: at once
        ((b"14", b"", b"", b"", b""), at(2026, 12, 2, 0, 14)),  # passed: the next hour
        ((b"0", b"0", b"1", b"1", b""), at(2027, 1, 1, 0, 0)),  # new year
        ((b"0", b"12", b"29", b"2", b""), at(2028, 2, 29, 12, 0)),  # the next leap day
        ((b"0", b"0", b"", b"", b"0"), at(2026, 12, 6, 0, 0)),  # the next Sunday
        # Both day fields given: either matches, as in cron (the 3rd is a Thursday,
        # the next Friday the 4th).
        ((b"0", b"0", b"3", b"", b"5"), at(2026, 12, 3, 0, 0)),
        ((b"0", b"0", b"10", b"", b"5"), at(2026, 12, 4, 0, 0)),
    ],
)
def test_submit_job_sched_runs_at_the_next_matching_minute(
    clock: Clock, fields: tuple[bytes, ...], expected: int
) -> None:
    clock.now = NOW
    server = make(clock)
    client = Conn(server, "c")
    job = server.jobs[sched(server, client, *fields)]
    assert job.background
    if expected:
        assert (job.state, job.when) == (JobState.SCHEDULED, expected)
    else:
        assert job.state is JobState.QUEUED


@pytest.mark.parametrize(
    "fields",
    [(b"60", b"", b"", b"", b""), (b"x", b"", b"", b"", b""), (b"0", b"0", b"31", b"2", b"")],
)
def test_submit_job_sched_refuses_impossible_times(clock: Clock, fields: tuple[bytes, ...]) -> None:
    server = make(clock)
    client = Conn(server, "c")
    client.send(T.SUBMIT_JOB_SCHED, b"f", b"", *fields, b"data")
    code, _text = client.one(T.ERROR)
    assert code == b"INVALID_ARGUMENTS" and not server.jobs


SCHEDULE = {
    "schedules": [{"name": "tick", "cron": "*/5 * * * *", "function": "report", "payload": "p"}]
}


def test_recurring_schedule_fires_on_time_and_not_twice_across_a_restart(clock: Clock) -> None:
    clock.now = NOW
    server = configured(clock, SCHEDULE)
    worker = Conn(server, "w")
    worker.send(T.CAN_DO, b"report")
    clock.advance(at(2026, 12, 1, 23, 20) - NOW - 0.5)
    assert worker.grab() is None
    clock.advance(0.5)
    job = worker.grab()
    assert job is not None and job[2:] == (b"cron:tick:202612012320", b"p")
    worker.send(T.WORK_COMPLETE, job[0], b"")
    # A restart within the minute that fired: the next server waits for 23:25.
    clock.timers.clear()
    clock.advance(20)
    restarted = configured(clock, SCHEDULE)
    worker = Conn(restarted, "w")
    worker.send(T.CAN_DO, b"report")
    clock.advance(60)
    assert worker.grab() is None
    clock.advance(at(2026, 12, 1, 23, 25) - clock.now)
    assert worker.grab()[2] == b"cron:tick:202612012325"  # type: ignore[index]


def test_a_reload_replaces_schedules_without_firing_twice(clock: Clock) -> None:
    clock.now = at(2026, 12, 1, 23, 19) + 59.0
    server = configured(clock, SCHEDULE)
    worker = Conn(server, "w")
    worker.send(T.CAN_DO, b"report")
    clock.advance(1)
    assert worker.grab() is not None
    server.apply_settings(parse_settings(SCHEDULE))  # SIGHUP in the same minute
    clock.advance(30)
    assert worker.grab() is None
    server.apply_settings(parse_settings({}))
    clock.advance(600)
    assert worker.grab() is None


def test_retries_are_stored_under_a_new_id_and_the_old_copy_deleted(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    persister = server.keeper = ListKeeper()
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"flaky")
    client.send(T.SUBMIT_JOB_BG, b"flaky", b"u", b"x")
    [job] = persister.added
    server.stored(job)
    first_id = job.store_id
    run_job(worker, T.WORK_FAIL)
    assert persister.added == [job, job] and job.store_id != first_id
    assert persister.done_ids == [first_id]
    server.stored(job)  # the retry's write returns: nothing to acknowledge, still scheduled
    assert job.state is JobState.SCHEDULED and client.received() == [(T.JOB_CREATED, (job.handle,))]


def test_a_retry_the_store_refuses_stays_failed(clock: Clock) -> None:
    server = make(clock)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    handle = client.submit(b"f", b"x", kind=T.SUBMIT_JOB_BG)
    run_job(worker, T.WORK_FAIL)
    persister = server.keeper = ListKeeper()
    assert resolved(server.failed.retry(handle))
    server.store_failed(persister.added[0], b"disk full")
    [record] = resolved(server.failed.records())
    assert record.handle == handle and record.reason == "the store refused its retry"
    assert handle not in server.jobs


class Heard:
    """An observer (the console's metrics' place) that records what it hears."""

    def __init__(self) -> None:
        self.events: list[tuple[bytes, str]] = []

    def event(self, job: Job, kind: str) -> None:
        self.events.append((job.function.name, kind))


def test_the_observer_hears_each_attempt_and_what_became_of_it(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY, job_retries=2)
    heard = server.observer = Heard()
    client = Conn(server, "c")
    worker = Conn(server, "w")
    worker.send(T.CAN_DO, b"flaky")
    worker.send(T.CAN_DO, b"plain")
    handle = client.submit(b"flaky", b"x", b"", T.SUBMIT_JOB_BG)
    run_job(worker, T.WORK_FAIL)  # retried by its policy
    clock.advance(10)
    assert worker.grab() is not None
    worker.leave()  # lost while running: retried too
    worker = Conn(server, "w2")
    worker.send(T.CAN_DO, b"flaky")
    worker.send(T.CAN_DO, b"plain")
    clock.advance(20)
    run_job(worker, T.WORK_EXCEPTION, b"boom")  # the third attempt: failed for good
    assert resolved(server.failed.retry(handle))  # an operator runs it again
    run_job(worker, T.WORK_COMPLETE, b"done")
    client.submit(b"plain", b"y", b"", T.SUBMIT_JOB_BG)
    for _ in range(2):  # no policy: --job-retries 2 requeues once, then drops
        assert worker.grab() is not None
        worker.leave()
        worker = Conn(server, "w3")
        worker.send(T.CAN_DO, b"plain")
    assert heard.events == [
        (b"flaky", "submitted"),
        (b"flaky", "failed"),
        (b"flaky", "retried"),
        (b"flaky", "worker_lost"),
        (b"flaky", "retried"),
        (b"flaky", "exception"),
        (b"flaky", "submitted"),
        (b"flaky", "completed"),
        (b"plain", "submitted"),
        (b"plain", "worker_lost"),
        (b"plain", "requeued"),
        (b"plain", "worker_lost"),
        (b"plain", "dropped"),
    ]
    stats = server.stats
    assert (stats.created, stats.retried, stats.requeued, stats.dropped) == (3, 2, 1, 1)
