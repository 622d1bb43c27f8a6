"""What the core offers the console, on a manual clock: retry now, the schedules'
firings, and the audit list."""

from __future__ import annotations

from geartrain.protocol import PacketType
from geartrain.server.audit import Audit
from geartrain.server.model import JobState
from geartrain.store.records import Attempt, decode_outcomes, encode_outcomes

from .harness import RETRY_FLAKY, Clock, Conn, ListKeeper, configured, run_job
from .test_failures import NOW, SCHEDULE, at

T = PacketType


def test_retry_now_queues_a_waiting_retry_and_its_old_due_time_is_ignored(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"flaky")
    handle = client.submit(b"flaky", b"payload", b"u1", T.SUBMIT_JOB_BG)
    assert not server.retry_now(handle)  # queued, not a waiting retry
    run_job(worker, T.WORK_FAIL)
    job = server.jobs[handle]
    assert job.state is JobState.SCHEDULED and server.queues.scheduled() == [job]
    assert server.retry_now(handle) and job.state is JobState.QUEUED
    assert server.queues.scheduled() == [] and job.function.scheduled == 0
    assert not server.retry_now(handle)
    # The second attempt fails too: it waits 20 s, not the first wait's 10.
    assert run_job(worker, T.WORK_FAIL) == handle
    assert job.when == clock.now + 20 and server.queues.scheduled() == [job]
    clock.advance(10)
    assert job.state is JobState.SCHEDULED and worker.grab() is None
    clock.advance(10)
    assert run_job(worker, T.WORK_COMPLETE, b"") == handle
    assert not server.retry_now(b"H:none:1")


def test_schedules_remember_their_firings(clock: Clock) -> None:
    clock.now = NOW
    server = configured(clock, SCHEDULE)
    recurring = server.recurring
    (schedule,) = recurring.schedules
    assert recurring.last("tick") is None
    assert recurring.next_firing(schedule) == at(2026, 12, 1, 23, 20)
    clock.advance(at(2026, 12, 1, 23, 20) - NOW)
    clock.advance(300)
    firings = list(recurring.history["tick"])
    assert [f.at for f in firings] == [at(2026, 12, 1, 23, 20), at(2026, 12, 1, 23, 25)]
    assert all(f.handle in server.jobs for f in firings)
    assert recurring.last("tick") == at(2026, 12, 1, 23, 25)
    assert recurring.next_firing(schedule) == at(2026, 12, 1, 23, 30)


def test_audit_keeps_the_newest_entries(clock: Clock) -> None:
    audit = Audit(lambda: clock.now, size=3)
    for i in range(5):
        clock.now += 1
        audit.record("ops", "retry", f"H:{i}", i)
    assert len(audit) == 3
    assert [e.target for e in audit.newest(0, 2)] == ["H:4", "H:3"]
    assert [e.target for e in audit.newest(2, 10)] == ["H:2"]
    assert audit.newest(5, 10) == []
    (entry,) = audit.newest(0, 1)
    assert (entry.at, entry.who, entry.action, entry.touched) == (clock.now, "ops", "retry", 4)


def test_retry_now_is_written_to_the_store_due_now(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    keeper = server.keeper = ListKeeper()
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"flaky")
    client.send(T.SUBMIT_JOB_BG, b"flaky", b"u1", b"payload")
    (job,) = keeper.added
    server.stored(job)
    handle = job.handle
    run_job(worker, T.WORK_FAIL)
    waiting_id = job.store_id
    assert keeper.added == [job, job] and job.when == clock.now + 10
    assert server.retry_now(handle)
    # Written anew with no due time (a restart finds it due), the waiting copy deleted.
    assert keeper.added == [job, job, job] and job.when == 0.0
    assert keeper.done_ids[-1] == waiting_id and job.store_id != waiting_id
    server.stored(job)
    assert run_job(worker, T.WORK_COMPLETE, b"") == handle


def test_compacting_drops_only_the_entries_of_jobs_that_left(clock: Clock) -> None:
    server = configured(clock, {})
    client, worker = Conn(server, "c"), Conn(server, "w")
    handles = [client.submit(b"f", b"%d" % i, b"u%d" % i, T.SUBMIT_JOB_BG) for i in range(6)]
    for handle in handles[::2]:
        assert server.cancel(handle)
    f = server.functions[b"f"]
    assert f.queues is not None and len(f.queues[1]) == 6 and f.queued[1] == 3
    server.queues.compact(f)
    assert [j.handle for j in f.queues[1]] == handles[1::2] and f.queued[1] == 3
    worker.send(T.CAN_DO, b"f")
    assert [run_job(worker, T.WORK_COMPLETE, b"") for _ in range(3)] == handles[1::2]
    assert worker.grab() is None


def test_each_attempt_keeps_when_it_started_and_ended(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"flaky")
    handle = client.submit(b"flaky", b"payload", b"u1", T.SUBMIT_JOB_BG)
    first = clock.now
    assert worker.grab() is not None
    clock.advance(3)
    worker.send(T.WORK_FAIL, handle)
    job = server.jobs[handle]
    assert [(a.started, a.at) for a in job.outcomes] == [(first, first + 3)]
    clock.advance(10)  # the retry's backoff
    second = clock.now
    assert worker.grab() is not None
    clock.advance(2)
    worker.send(T.WORK_FAIL, handle)
    assert [(a.started, a.at) for a in job.outcomes] == [
        (first, first + 3),
        (second, second + 2),
    ]


def test_outcomes_kept_without_start_times_are_still_read() -> None:
    (old,) = decode_outcomes('[["fail", "boom", "w", 12.5]]')
    assert (old.kind, old.message, old.at, old.started) == ("fail", "boom", 12.5, 0.0)
    new = Attempt("fail", "boom", "w", 12.5, 10.0)
    assert decode_outcomes(encode_outcomes([new])) == (new,)
