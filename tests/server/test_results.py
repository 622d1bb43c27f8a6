"""Kept results of background jobs in the core, on the manual clock: the policy's
and the submitter's opt-in, failures, expiry, bounds, the `result` admin command
and the OPTION_REQ extension (gearmand's answer to anything else unchanged)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from geartrain.durations import parse_duration
from geartrain.protocol import PacketType
from geartrain.server.admin import AdminCommands
from geartrain.server.core import JobServer
from geartrain.server.settings import parse_settings

from .harness import Clock, Conn, configured, make, resolved, run_job

T = PacketType

KEEP = {"functions": {"kept*": {"keep_results": "1h"}}}


def answer(server: JobServer, line: bytes) -> bytes:
    admin = AdminCommands(server, lambda: "ERROR")
    reply = admin.line(Conn(server, "admin").peer, line)
    assert reply is not None
    return resolved(reply)


def test_the_policy_keeps_a_background_result_until_it_expires(clock: Clock) -> None:
    server = configured(clock, KEEP)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"kept_fn")
    handle = client.submit(b"kept_fn", b"in", b"", T.SUBMIT_JOB_BG)
    assert answer(server, b"result " + handle) == b"OK queued\n"
    job = worker.grab()
    assert job is not None
    assert answer(server, b"result " + handle) == b"OK running\n"
    worker.send(T.WORK_COMPLETE, handle, b"out\0put")
    assert answer(server, b"result " + handle) == b"OK complete %s\n" % base64.b64encode(
        b"out\0put"
    )
    clock.advance(3599)
    assert answer(server, b"result " + handle).startswith(b"OK complete")
    clock.advance(2)
    assert answer(server, b"result " + handle) == b"ERR UNKNOWN_JOB\r\n"
    assert len(server.results) == 0


def test_without_opt_in_nothing_is_kept(clock: Clock) -> None:
    server = configured(clock, KEEP)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"plain")
    handle = client.submit(b"plain", b"in", b"", T.SUBMIT_JOB_BG)
    run_job(worker, T.WORK_COMPLETE, b"out")
    assert answer(server, b"result " + handle) == b"ERR UNKNOWN_JOB\r\n"
    assert len(server.results) == 0


def test_foreground_results_are_not_kept(clock: Clock) -> None:
    server = configured(clock, KEEP)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"kept_fn")
    handle = client.submit(b"kept_fn", b"in")
    run_job(worker, T.WORK_COMPLETE, b"out")
    assert client.one(T.WORK_COMPLETE) == (handle, b"out")
    assert len(server.results) == 0


def test_failures_are_kept_with_the_exception_data(clock: Clock) -> None:
    server = configured(clock, KEEP)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"kept_fn")
    failed = client.submit(b"kept_fn", b"1", b"", T.SUBMIT_JOB_BG)
    raised = client.submit(b"kept_fn", b"2", b"", T.SUBMIT_JOB_BG)
    run_job(worker, T.WORK_FAIL)
    run_job(worker, T.WORK_EXCEPTION, b"ValueError: bad")
    assert answer(server, b"result " + failed) == b"OK fail\n"
    expected = b"OK exception %s\n" % base64.b64encode(b"ValueError: bad")
    assert answer(server, b"result " + raised) == expected
    cancelled = client.submit(b"kept_fn", b"3", b"", T.SUBMIT_JOB_BG)
    assert answer(server, b"cancel job " + cancelled) == b"OK\r\n"
    assert answer(server, b"result " + cancelled) == b"OK cancelled\n"


def test_the_submitter_opts_in_with_option_req(clock: Clock) -> None:
    server = make(clock)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    client.send(T.OPTION_REQ, b"keep_result=90")
    assert client.one(T.OPTION_RES) == (b"keep_result=90",)
    kept = client.submit(b"f", b"1", b"", T.SUBMIT_JOB_BG)
    assert server.results.get(kept) is not None  # pending: survives a restart with the job
    client.send(T.OPTION_REQ, b"keep_result=0")
    assert client.one(T.OPTION_RES) == (b"keep_result=0",)
    plain = client.submit(b"f", b"2", b"", T.SUBMIT_JOB_BG)
    run_job(worker, T.WORK_COMPLETE, b"one")
    run_job(worker, T.WORK_COMPLETE, b"two")
    assert answer(server, b"result " + kept) == b"OK complete %s\n" % base64.b64encode(b"one")
    assert answer(server, b"result " + plain) == b"ERR UNKNOWN_JOB\r\n"
    clock.advance(91)
    assert answer(server, b"result " + kept) == b"ERR UNKNOWN_JOB\r\n"


@pytest.mark.parametrize(
    "option", [b"keep_result=", b"keep_result=x", b"keep_result=-1", b"keep_result=400d"]
)
def test_a_bad_keep_result_value_gets_a_clear_error(clock: Clock, option: bytes) -> None:
    server = make(clock)
    client = Conn(server, "c")
    client.send(T.OPTION_REQ, option)
    code, text = client.one(T.ERROR)
    assert code == b"INVALID_ARGUMENTS" and text.startswith(b"keep_result takes a duration")
    assert client.peer.keep_result == 0


def test_other_unknown_options_are_refused_as_gearmand_refuses_them(clock: Clock) -> None:
    server = make(clock)
    client = Conn(server, "c")
    client.send(T.OPTION_REQ, b"keep")
    assert client.one(T.ERROR) == (b"UNKNOWN_OPTION", b"Server does not recognize given option")


def test_results_are_bounded_oldest_first(clock: Clock) -> None:
    server = configured(clock, {**KEEP, "results": {"max_jobs": 2}})
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"kept_fn")
    handles = [client.submit(b"kept_fn", b"%d" % i, b"", T.SUBMIT_JOB_BG) for i in range(3)]
    for _ in handles:
        run_job(worker, T.WORK_COMPLETE, b"x" * 10)
    assert [server.results.get(h) is not None for h in handles] == [False, True, True]
    server.apply_settings(parse_settings({**KEEP, "results": {"max_bytes": 1}}))
    assert [server.results.get(h) is not None for h in handles] == [False, False, True]


def test_result_waits_for_the_job_to_end(clock: Clock) -> None:
    async def scenario() -> None:
        server = configured(clock, KEEP)
        client, worker = Conn(server, "c"), Conn(server, "w")
        worker.send(T.CAN_DO, b"kept_fn")
        handle = client.submit(b"kept_fn", b"in", b"", T.SUBMIT_JOB_BG)
        admin = AdminCommands(server, lambda: "ERROR")
        waiting = admin.line(Conn(server, "admin").peer, b"result " + handle + b" 30")
        assert asyncio.iscoroutine(waiting)
        task = asyncio.ensure_future(waiting)
        await asyncio.sleep(0)
        assert not task.done()
        run_job(worker, T.WORK_COMPLETE, b"done")
        assert await task == b"OK complete %s\n" % base64.b64encode(b"done")
        short = admin.line(Conn(server, "admin").peer, b"result " + handle + b" 0.01")
        assert resolved(short) == b"OK complete %s\n" % base64.b64encode(b"done")  # no wait
        queued = client.submit(b"kept_fn", b"in2", b"", T.SUBMIT_JOB_BG)
        timed_out = admin.line(Conn(server, "admin").peer, b"result " + queued + b" 0.01")
        assert asyncio.iscoroutine(timed_out)
        assert await timed_out == b"OK queued\n"

    asyncio.run(scenario())


def test_bad_result_commands_get_one_line_errors(clock: Clock) -> None:
    server = make(clock)
    for line in (b"result", b"result H:x 5 6", b"result H:x soon"):
        assert answer(server, line).startswith(b"ERR INVALID_ARGUMENTS")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("1h30m", 5400.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1x", "h", "-5", "inf"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_bad_keep_results_setting_names_the_table() -> None:
    with pytest.raises(ValueError, match=r"\[defaults\]: keep_results"):
        parse_settings({"defaults": {"keep_results": "soon"}})


def test_expired_results_leave_an_idle_server_by_timer(clock: Clock) -> None:
    server = configured(clock, {"functions": {"kept*": {"keep_results": 60}}})
    persisted: list[tuple[list[bytes], list[bytes]]] = []
    server.results.persist = lambda added, removed: persisted.append(
        ([r.handle for r in added], removed)
    )
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"kept_fn")
    handle = client.submit(b"kept_fn", b"in", b"", T.SUBMIT_JOB_BG)
    run_job(worker, T.WORK_COMPLETE, b"out")
    assert persisted == [([handle], [])]
    clock.advance(59)
    assert len(server.results) == 1
    clock.advance(2)  # nothing asked: the timer purges it, and the store hears of it
    assert len(server.results) == 0 and persisted[-1] == ([], [handle])


def test_a_retried_failed_job_keeps_its_submitters_opt_in(clock: Clock) -> None:
    server = make(clock)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    client.send(T.OPTION_REQ, b"keep_result=1h")
    client.one(T.OPTION_RES)
    handle = client.submit(b"f", b"1", b"", T.SUBMIT_JOB_BG)
    run_job(worker, T.WORK_FAIL)
    assert answer(server, b"result " + handle) == b"OK fail\n"
    assert answer(server, b"retry failed " + handle) == b"OK\r\n"
    assert answer(server, b"result " + handle) == b"OK queued\n"  # running again
    run_job(worker, T.WORK_COMPLETE, b"second time")
    expected = b"OK complete %s\n" % base64.b64encode(b"second time")
    assert answer(server, b"result " + handle) == expected


def test_a_job_taken_from_elsewhere_brings_its_submitters_keep(clock: Clock) -> None:
    """Cluster mode: the member that ends a job it claimed keeps its result for the
    seconds its submission asked (``Job.keep_result``, from the job's row)."""
    server = make(clock)
    worker = Conn(server, "w")
    worker.send(T.CAN_DO, b"asked")
    job = server.adopt(b"H:other:c7", b"asked", b"", b"in", 1, b"", 7, 0)
    job.keep_result = 60
    run_job(worker, T.WORK_COMPLETE, b"out")
    assert answer(server, b"result H:other:c7") == b"OK complete %s\n" % base64.b64encode(b"out")
    clock.advance(61)
    assert answer(server, b"result H:other:c7") == b"ERR UNKNOWN_JOB\r\n"


@pytest.mark.parametrize("seconds", [-1.0, 367 * 86400.0])
async def test_the_client_refuses_a_keep_beyond_a_year_before_sending(seconds: float) -> None:
    from geartrain import Client

    async with Client("127.0.0.1:1") as client:  # nothing listens: nothing is sent
        with pytest.raises(ValueError, match="keep_result"):
            await client.submit_background("f", b"x", keep_result=seconds)
