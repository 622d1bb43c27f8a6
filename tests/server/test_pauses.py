"""Pausing and resuming a function, in the core on a manual clock, and the admin
commands over it: jobs stay queued, no worker gets one, resume wakes sleepers."""

from __future__ import annotations

import logging

import pytest

from geartrain.protocol import PacketType
from geartrain.server.admin import AdminCommands
from geartrain.server.core import JobServer
from geartrain.server.model import JobState, Peer
from geartrain.server.settings import parse_settings

from .harness import Clock, Conn, make, resolved

T = PacketType


def pause(server: JobServer, name: bytes, paused: bool = True) -> bool:
    return resolved(server.set_paused(name, paused, "test"))


def test_paused_jobs_are_accepted_and_wait(server: JobServer) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    assert pause(server, b"f")
    background = client.submit(b"f", b"1", kind=T.SUBMIT_JOB_BG)
    foreground = client.submit(b"f", b"2")
    assert worker.grab() is None
    assert server.jobs[background].state is JobState.QUEUED
    client.send(T.GET_STATUS, background)
    assert client.one(T.STATUS_RES) == (background, b"1", b"0", b"0", b"0")
    assert pause(server, b"f", False)
    assert worker.grab()[0] == background  # type: ignore[index]
    assert worker.grab()[0] == foreground  # type: ignore[index]


def test_a_worker_with_two_functions_gets_the_other(server: JobServer) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"a")
    worker.send(T.CAN_DO, b"b")
    pause(server, b"a")
    client.submit(b"a", b"held", kind=T.SUBMIT_JOB_HIGH_BG)
    other = client.submit(b"b", b"free", kind=T.SUBMIT_JOB_LOW_BG)
    assert worker.grab()[0] == other  # type: ignore[index]
    assert worker.grab() is None


def test_sleepers_are_not_woken_while_paused_and_are_on_resume(server: JobServer) -> None:
    client, worker, second = Conn(server, "c"), Conn(server, "w"), Conn(server, "w2")
    for w in (worker, second):
        w.send(T.CAN_DO, b"f")
    pause(server, b"f")
    for w in (worker, second):
        assert w.grab() is None
        w.send(T.PRE_SLEEP)
    client.submit(b"f", b"1", kind=T.SUBMIT_JOB_BG)
    client.submit(b"f", b"2", kind=T.SUBMIT_JOB_BG)
    assert worker.received() == [] and second.received() == []
    pause(server, b"f", False)
    assert worker.received() == [(T.NOOP, ())]
    assert second.received() == [(T.NOOP, ())]


def test_resume_wakes_at_most_a_worker_per_job(server: JobServer) -> None:
    client = Conn(server, "c")
    workers = [Conn(server, f"w{i}") for i in range(3)]
    for w in workers:
        w.send(T.CAN_DO, b"f")
        w.grab()
        w.send(T.PRE_SLEEP)
    pause(server, b"f")
    client.submit(b"f", b"1", kind=T.SUBMIT_JOB_BG)
    pause(server, b"f", False)
    assert [w.received() for w in workers] == [[(T.NOOP, ())], [], []]


def test_a_worker_registering_for_a_paused_backlog_is_not_woken(server: JobServer) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"other")
    worker.grab()
    worker.send(T.PRE_SLEEP)
    pause(server, b"f")
    client.submit(b"f", b"1", kind=T.SUBMIT_JOB_BG)
    worker.send(T.CAN_DO, b"f")
    assert worker.received() == []
    pause(server, b"f", False)
    assert worker.received() == [(T.NOOP, ())]


def test_pre_sleep_with_only_paused_work_sleeps(server: JobServer) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    pause(server, b"f")
    client.submit(b"f", b"1", kind=T.SUBMIT_JOB_BG)
    worker.send(T.PRE_SLEEP)
    assert worker.received() == []
    assert worker.peer.sleeping


def test_running_jobs_finish_while_paused(server: JobServer) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    handle = client.submit(b"f", b"x")
    assert worker.grab()[0] == handle  # type: ignore[index]
    pause(server, b"f")
    worker.send(T.WORK_COMPLETE, handle, b"done")
    assert client.one(T.WORK_COMPLETE) == (handle, b"done")


def test_epoch_jobs_and_retries_that_fall_due_wait(clock: Clock) -> None:
    server = make(clock)
    server.apply_settings(
        parse_settings(
            {
                "functions": {
                    "f": {"attempts": 2, "retry_on": ["fail"], "backoff_base": 10.0, "jitter": 0.0}
                }
            }
        )
    )
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    client.send(T.SUBMIT_JOB_EPOCH, b"f", b"", str(int(clock.now) + 60).encode(), b"later")
    epoch = client.one(T.JOB_CREATED)[0]
    retried = client.submit(b"f", b"flaky", kind=T.SUBMIT_JOB_BG)
    assert worker.grab()[0] == retried  # type: ignore[index]
    pause(server, b"f")
    worker.send(T.WORK_FAIL, retried)
    assert worker.grab() is None
    worker.send(T.PRE_SLEEP)
    clock.advance(61)  # both fall due: queued, but nobody woken
    assert server.jobs[epoch].state is JobState.QUEUED
    assert server.jobs[retried].state is JobState.QUEUED
    assert worker.received() == []
    pause(server, b"f", False)
    assert worker.received() == [(T.NOOP, ())]
    assert {worker.grab()[0], worker.grab()[0]} == {epoch, retried}  # type: ignore[index]


def test_foreground_client_keeps_waiting(server: JobServer, clock: Clock) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    pause(server, b"f")
    handle = client.submit(b"f", b"x")
    clock.advance(3600)
    assert client.received() == []
    pause(server, b"f", False)
    assert worker.grab()[0] == handle  # type: ignore[index]


def test_pause_outlives_a_forgotten_function(clock: Clock) -> None:
    server = make(clock, max_idle_functions=0)
    pause(server, b"f")
    worker, client = Conn(server, "w"), Conn(server, "c")
    worker.send(T.CAN_DO, b"f")
    worker.send(T.CANT_DO, b"f")
    assert b"f" not in server.functions  # forgotten; the hold is on the name
    worker.send(T.CAN_DO, b"f")
    client.submit(b"f", b"x", kind=T.SUBMIT_JOB_BG)
    assert worker.grab() is None
    assert server.pauses.listed() == [b"f"]


def test_pause_and_resume_report_a_change_and_log_who(
    server: JobServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "geartrain.server")
    assert pause(server, b"f") and not pause(server, b"f")
    assert pause(server, b"f", False) and not pause(server, b"f", False)
    assert [r.getMessage() for r in caplog.records] == [
        "Function f paused by test",
        "Function f resumed by test",
    ]


def test_replace_makes_exactly_these_paused(server: JobServer) -> None:
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"b")
    pause(server, b"a")
    pause(server, b"b")
    client.submit(b"b", b"x", kind=T.SUBMIT_JOB_BG)
    worker.send(T.PRE_SLEEP)
    assert server.pauses.replace([b"a", b"c"]) == ([b"c"], [b"b"])
    assert server.pauses.listed() == [b"a", b"c"]
    assert worker.received() == [(T.NOOP, ())]


# -- the admin commands --------------------------------------------------------


def admin_peer(server: JobServer) -> Peer:
    peer = Peer(lambda data: None, lambda: None, "127.0.0.1", 9, True)
    server.connect(peer)
    return peer


def test_admin_pause_resume_paused(server: JobServer) -> None:
    admin, peer = AdminCommands(server, lambda: "NOTICE"), admin_peer(server)
    assert resolved(admin.line(peer, b"paused")) == b".\n"
    assert resolved(admin.line(peer, b"pause email")) == b"OK\r\n"
    assert resolved(admin.line(peer, b"pause email")) == b"OK\r\n"  # already: still OK
    assert resolved(admin.line(peer, b"PAUSE video")) == b"OK\r\n"
    assert resolved(admin.line(peer, b"paused")) == b"email\nvideo\n.\n"
    assert resolved(admin.line(peer, b"resume email")) == b"OK\r\n"
    assert resolved(admin.line(peer, b"paused")) == b"video\n.\n"


@pytest.mark.parametrize(
    ("line", "word"),
    [
        (b"pause", b"pause"),
        (b"resume", b"resume"),
        (b"pause a b", b"pause"),
        (b"paused x", b"paused"),
    ],
)
def test_admin_bad_arguments_get_gearmands_error(
    server: JobServer, line: bytes, word: bytes
) -> None:
    admin, peer = AdminCommands(server, lambda: "NOTICE"), admin_peer(server)
    assert resolved(admin.line(peer, line)) == (
        b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+"
        + word
        + b"\r\n"
    )


def test_status_is_unchanged_by_a_pause(server: JobServer) -> None:
    admin, peer = AdminCommands(server, lambda: "NOTICE"), admin_peer(server)
    client, worker = Conn(server, "c"), Conn(server, "w")
    worker.send(T.CAN_DO, b"f")
    client.submit(b"f", b"x", kind=T.SUBMIT_JOB_BG)
    before = resolved(admin.line(peer, b"status")), resolved(admin.line(peer, b"prioritystatus"))
    resolved(admin.line(peer, b"pause f"))
    after = resolved(admin.line(peer, b"status")), resolved(admin.line(peer, b"prioritystatus"))
    assert before == after == (b"f\t1\t0\t1\n.\n", b"f\t0\t1\t0\t1\n.\n")


class FailingStore:
    async def load_paused(self) -> list[bytes]:
        return []

    async def save_paused(self, name: bytes, paused: bool) -> None:
        raise OSError("disk gone")


def test_a_pause_the_store_cannot_keep_holds_and_says_so(server: JobServer) -> None:
    server.pause_store = FailingStore()
    admin, peer = AdminCommands(server, lambda: "NOTICE"), admin_peer(server)
    assert resolved(admin.line(peer, b"pause f")) == b"ERR QUEUE_ERROR not+saved:+disk+gone\r\n"
    assert server.pauses.listed() == [b"f"]
