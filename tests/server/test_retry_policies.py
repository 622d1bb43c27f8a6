"""Retry policies for foreground jobs, policies declared in code, and the attempt
number a worker is told: the core on a manual clock (the retries extension's
options and JOB_ATTEMPT, and which policy wins)."""

from __future__ import annotations

import pytest

from geartrain.protocol import PacketType
from geartrain.retry import OUTCOMES, Retry, storable, stored
from geartrain.server.core import JobServer
from geartrain.server.policies import Policies, Policy
from geartrain.server.settings import parse_settings

from .harness import RETRY_FLAKY, Clock, Conn, configured, make, resolved

T = PacketType


def grab(worker: Conn) -> tuple[bytes, ...]:
    job = worker.grab()
    assert job is not None
    return job


def opted_in(server: JobServer, name: str) -> Conn:
    peer = Conn(server, name)
    peer.send(T.OPTION_REQ, b"retries")
    assert peer.one(T.OPTION_RES) == (b"retries",)
    return peer


def grab_with_attempt(worker: Conn) -> tuple[bytes, bytes, bytes]:
    """GRAB_JOB_UNIQ on an opted-in worker: the attempt's (handle, attempt, attempts)."""
    worker.send(T.GRAB_JOB_UNIQ)
    (ptype, attempt), (assign, args) = worker.received()
    assert (ptype, assign) == (T.JOB_ATTEMPT, T.JOB_ASSIGN_UNIQ)
    assert attempt[0] == args[0]
    return attempt[0], attempt[1], attempt[2]


# -- (b) foreground jobs --------------------------------------------------------------


def test_a_waiting_client_gets_the_attempt_that_succeeded_and_no_failure(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    client, worker = Conn(server, "c"), Conn(server, "w")
    client.send(T.OPTION_REQ, b"exceptions")
    client.received()
    worker.send(T.CAN_DO, b"flaky")
    handle = client.submit(b"flaky", b"x")
    worker.send(T.WORK_FAIL, grab(worker)[0])
    assert client.received() == []  # told nothing: it waits on
    client.send(T.GET_STATUS, handle)
    assert client.one(T.STATUS_RES) == (handle, b"1", b"0", b"0", b"0")  # known, waiting
    clock.advance(9.9)
    assert worker.grab() is None  # the backoff
    clock.advance(0.1)
    worker.send(T.WORK_EXCEPTION, grab(worker)[0], b"ValueError: boom")
    assert client.received() == []
    clock.advance(20)
    worker.send(T.WORK_COMPLETE, grab(worker)[0], b"ok after 3")
    assert client.one(T.WORK_COMPLETE) == (handle, b"ok after 3")
    assert handle not in server.jobs and not resolved(server.failed.records())


def test_the_last_attempts_failure_reaches_the_client_and_no_failed_set(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    client, worker = Conn(server, "c"), Conn(server, "w")
    client.send(T.OPTION_REQ, b"exceptions")
    client.received()
    worker.send(T.CAN_DO, b"flaky")
    handle = client.submit(b"flaky", b"x")
    for _ in range(2):
        worker.send(T.WORK_FAIL, grab(worker)[0])
        clock.advance(100)
    worker.send(T.WORK_EXCEPTION, grab(worker)[0], b"third")
    assert client.one(T.WORK_EXCEPTION) == (handle, b"third")
    assert handle not in server.jobs and not resolved(server.failed.records())


def test_without_a_policy_the_first_failure_is_final_as_in_gearmand(clock: Clock) -> None:
    server = make(clock)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"flaky")
    handle = client.submit(b"flaky", b"x")
    worker.send(T.WORK_FAIL, grab(worker)[0])
    assert client.one(T.WORK_FAIL) == (handle,)
    assert handle not in server.jobs


def test_data_and_status_of_a_failed_attempt_were_forwarded_and_status_restarts(
    clock: Clock,
) -> None:
    server = configured(clock, RETRY_FLAKY)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"flaky")
    handle = client.submit(b"flaky", b"x")
    worker.send(T.WORK_DATA, grab(worker)[0], b"part 1")
    worker.send(T.WORK_STATUS, handle, b"1", b"2")
    worker.send(T.WORK_FAIL, handle)
    assert client.received() == [
        (T.WORK_DATA, (handle, b"part 1")),
        (T.WORK_STATUS, (handle, b"1", b"2")),
    ]
    client.send(T.GET_STATUS, handle)
    assert client.one(T.STATUS_RES) == (handle, b"1", b"0", b"0", b"0")
    clock.advance(10)
    worker.send(T.WORK_COMPLETE, grab(worker)[0], b"done")
    assert client.one(T.WORK_COMPLETE) == (handle, b"done")


def test_coalesced_clients_all_get_the_final_result(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    first, second, worker = Conn(server, "c1"), Conn(server, "c2"), Conn(server, "w")
    worker.send(T.CAN_DO, b"flaky")
    handle = first.submit(b"flaky", b"x", b"same")
    worker.send(T.WORK_FAIL, grab(worker)[0])
    assert second.submit(b"flaky", b"x", b"same") == handle  # joins during the backoff
    clock.advance(10)
    worker.send(T.WORK_FAIL, grab(worker)[0])
    clock.advance(20)
    worker.send(T.WORK_COMPLETE, grab(worker)[0], b"ok after 3")
    assert first.one(T.WORK_COMPLETE) == second.one(T.WORK_COMPLETE) == (handle, b"ok after 3")


def test_a_client_that_leaves_during_the_backoff_drops_the_job(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"flaky")
    handle = client.submit(b"flaky", b"x")
    worker.send(T.WORK_FAIL, grab(worker)[0])
    client.leave()
    assert handle not in server.jobs
    clock.advance(10)
    assert worker.grab() is None


# -- (c) the attempt a worker runs ------------------------------------------------------


def test_an_opted_in_worker_is_told_attempts_1_2_3(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    client, worker = Conn(server, "c"), opted_in(server, "w")
    worker.send(T.CAN_DO, b"flaky")
    handle = client.submit(b"flaky", b"x")
    seen = []
    for result in (T.WORK_FAIL, T.WORK_FAIL, T.WORK_COMPLETE):
        h, attempt, attempts = grab_with_attempt(worker)
        seen.append((attempt, attempts))
        worker.send(result, h, *((b"ok",) if result is T.WORK_COMPLETE else ()))
        clock.advance(100)
    assert seen == [(b"1", b"3"), (b"2", b"3"), (b"3", b"3")]
    assert client.received()[-1] == (T.WORK_COMPLETE, (handle, b"ok"))


def test_without_a_policy_an_opted_in_worker_is_told_attempt_1_of_1(clock: Clock) -> None:
    server = make(clock)
    client, worker = Conn(server, "c"), opted_in(server, "w")
    worker.send(T.CAN_DO, b"f")
    handle = client.submit(b"f", b"x", kind=T.SUBMIT_JOB_BG)
    assert grab_with_attempt(worker) == (handle, b"1", b"1")


def test_a_worker_that_did_not_opt_in_sees_nothing_new(clock: Clock) -> None:
    server = configured(clock, RETRY_FLAKY)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"flaky")
    client.submit(b"flaky", b"x")
    worker.send(T.GRAB_JOB)
    assert [p[0] for p in worker.received()] == [T.JOB_ASSIGN]
    for option in (b"retry attempts=2", b"retry-for attempts=2 flaky", b"Retries"):
        worker.send(T.OPTION_REQ, option)
        assert worker.one(T.ERROR)[0] == b"UNKNOWN_OPTION"


def test_a_peer_sending_the_extension_packet_is_closed_as_for_any_unknown_type(
    clock: Clock,
) -> None:
    server = make(clock)
    peer = Conn(server, "p")
    peer.send(T.JOB_ATTEMPT, b"H", b"1", b"1")
    assert peer.one(T.ERROR) == (b"INVALID_COMMAND", b"Unknown packet type 50")
    assert peer.closed


# -- (d) policies from code, and which one wins -------------------------------------------


def test_a_submission_policy_retries_a_foreground_job(clock: Clock) -> None:
    server = make(clock)
    client, worker = opted_in(server, "c"), opted_in(server, "w")
    worker.send(T.CAN_DO, b"f")
    client.send(T.OPTION_REQ, b"retry attempts=2;on=fail;backoff=5;jitter=0")
    client.received()
    handle = client.submit(b"f", b"x")
    other = client.submit(b"f", b"y")  # the policy was for one submission only
    h, attempt, attempts = grab_with_attempt(worker)
    assert (h, attempt, attempts) == (handle, b"1", b"2")
    worker.send(T.WORK_FAIL, h)
    h, attempt, attempts = grab_with_attempt(worker)
    assert (h, attempts) == (other, b"1")
    worker.send(T.WORK_FAIL, h)
    assert client.one(T.WORK_FAIL) == (other,)
    clock.advance(5)
    assert grab_with_attempt(worker) == (handle, b"2", b"2")
    worker.send(T.WORK_COMPLETE, handle, b"ok")
    assert client.one(T.WORK_COMPLETE) == (handle, b"ok")


def test_a_worker_declares_a_functions_policy_after_registering_it(clock: Clock) -> None:
    server = make(clock)
    client, worker = Conn(server, "c"), opted_in(server, "w")
    worker.send(T.OPTION_REQ, b"retry-for attempts=4 f")
    code, text = worker.one(T.ERROR)
    assert code == b"INVALID_ARGUMENTS" and b"CAN_DO" in text
    worker.send(T.CAN_DO, b"f")
    worker.send(T.OPTION_REQ, b"retry-for attempts=4;backoff=1;jitter=0 f")
    assert worker.one(T.OPTION_RES) == (b"retry-for attempts=4;backoff=1;jitter=0 f",)
    handle = client.submit(b"f", b"x")
    assert grab_with_attempt(worker) == (handle, b"1", b"4")


@pytest.mark.parametrize(
    "option",
    [b"retry attempts=0", b"retry nonsense", b"retry on=sometimes", b"retry-for attempts=2"],
)
def test_a_bad_policy_gets_a_one_line_error_and_changes_nothing(
    clock: Clock, option: bytes
) -> None:
    server = make(clock)
    peer = opted_in(server, "p")
    peer.send(T.CAN_DO, b"f")
    peer.send(T.OPTION_REQ, option)
    code, text = peer.one(T.ERROR)
    assert code == b"INVALID_ARGUMENTS" and text and b"\n" not in text
    assert peer.peer.next_retry is None and server.functions[b"f"].retry is None


SUBMITTED = Retry(attempts=5)
DECLARED = Retry(attempts=4)


def test_precedence_submission_then_settings_entry_then_worker_then_defaults() -> None:
    settings = parse_settings(
        {"defaults": {"attempts": 2, "timeout": 7}, "functions": {"listed*": {"attempts": 3}}}
    ).policies
    assert settings.for_job(b"listed", DECLARED, SUBMITTED).attempts == 5
    assert settings.for_job(b"listed", DECLARED, None).attempts == 3
    assert settings.for_job(b"other", DECLARED, None).attempts == 4
    assert settings.for_job(b"other", None, None).attempts == 2
    # Only the retry part comes from code: the timeout stays the file's.
    assert settings.for_job(b"other", DECLARED, SUBMITTED).timeout == 7


def test_code_policies_over_the_built_in_default() -> None:
    policies = Policies()
    assert policies.for_job(b"f", None, None) == Policy()
    policy = policies.for_job(b"f", Retry(attempts=2, on=["fail"], backoff=3, jitter=0), None)
    assert (policy.attempts, policy.retry_on, policy.backoff_base, policy.jitter) == (
        2,
        frozenset({"fail"}),
        3.0,
        0.0,
    )
    assert policies.for_job(b"f", None, Retry()).retry_on == frozenset(OUTCOMES)


def test_the_retry_text_reads_back_what_it_wrote() -> None:
    retry = Retry(attempts=7, on=("exception", "timeout"), backoff=0.5, backoff_cap=9, jitter=1)
    assert Retry.from_text(retry.to_text()) == retry
    assert retry.to_text() == b"attempts=7;on=exception,timeout;backoff=0.5;cap=9.0;jitter=1.0"
    with pytest.raises(ValueError, match="attempts"):
        Retry(attempts=0)
    with pytest.raises(ValueError, match="unknown outcome"):
        Retry(on=["sometimes"])


def test_a_stored_policy_reads_back_and_bad_words_mean_none() -> None:
    """What the stores keep of a submission's policy; a row's unreadable words give
    the function's policy (None) rather than stopping a restore."""
    retry = Retry(attempts=4, on=["fail"], backoff=2, jitter=0)
    assert stored(storable(retry)) == retry
    assert storable(None) == "" and stored("") is None and stored(None) is None
    assert stored("attempts=0") is None and stored("nonsense") is None
