"""Jobs for later from the Python client: SUBMIT_JOB_EPOCH (geartrain and gearmand) and
SUBMIT_JOB_SCHED (geartrain; gearmand refuses it)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from geartrain import Client, Priority, ServerError, Worker, WorkerJob, sync
from gt_helpers import wait_for, working
from serverproc import ServerProc

pytestmark = [pytest.mark.timeout(30), pytest.mark.in_process]


def recording_worker(address: str, ran: dict[bytes, float]) -> Worker:
    """A worker of ``later`` that notes when each job (by its data) ran."""
    # idle_timeout: gearmand 1.1 never wakes sleeping workers for due epoch jobs.
    worker = Worker(address, idle_timeout=0.3)

    @worker.register("later")
    async def later(job: WorkerJob) -> None:
        ran[job.data] = time.time()

    return worker


async def test_jobs_run_at_their_time(server: ServerProc) -> None:
    ran: dict[bytes, float] = {}
    async with working(recording_worker(server.address, ran)), Client(server.address) as client:
        start = time.time()
        when = int(start) + 2
        at = await client.submit_at(datetime.fromtimestamp(when, UTC), "later", b"at")
        assert (await client.get_status(at)).known
        await client.submit_later(timedelta(seconds=1.5), "later", b"later")
        await client.submit_background("later", b"when", when=when)
        await client.submit_later(0, "later", b"now")
        await wait_for(lambda: len(ran) == 4, timeout=8)
    assert ran[b"at"] >= when and ran[b"when"] >= when
    assert ran[b"later"] >= start + 1.5
    assert ran[b"now"] < when
    with pytest.raises(ValueError):
        await client.submit_background("later", when=when, priority=Priority.HIGH)
    with pytest.raises(ValueError):
        await client.submit_later(-1, "later")


async def test_submit_cron_runs_once_at_the_next_matching_minute(server: ServerProc) -> None:
    ran: dict[bytes, float] = {}
    async with working(recording_worker(server.address, ran)), Client(server.address) as client:
        if server.kind == "gearmand":  # parsed, then refused: ERROR INVALID_COMMAND
            with pytest.raises(ServerError):
                await client.submit_cron("* * * * *", "later", b"now")
            return
        await client.submit_cron("* * * * *", "later", b"now")  # this minute matches
        soon = time.gmtime(time.time() + 180)  # three minutes on, in UTC
        handle = await client.submit_cron(
            f"{soon.tm_min} {soon.tm_hour} * * *", "later", b"in three minutes"
        )
        await wait_for(lambda: b"now" in ran)
        status = await client.get_status(handle)
    assert status.known and not status.running
    assert list(ran) == [b"now"]


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("*/5 * * * *", "settings file"),
        ("1,2 * * * *", "settings file"),
        ("* 1-3 * * *", "settings file"),
        ("61 * * * *", "outside 0-59"),
        ("* * * *", "5 fields"),
    ],
)
def test_a_cron_the_protocol_cannot_carry_is_refused_before_sending(cron: str, says: str) -> None:
    # No server listens: the check comes first.
    with sync.Client("127.0.0.1:1") as client, pytest.raises(ValueError, match=says):
        client.submit_cron(cron, "later")


def test_the_sync_client_schedules_too(server: ServerProc) -> None:
    with sync.Client(server.address) as client:
        handles = [
            client.submit_at(time.time() + 60, "later"),
            client.submit_later(60, "later"),
        ]
        if server.kind == "geartrain":
            handles.append(client.submit_cron("* * 1 1 *", "later"))
        assert all(client.get_status(handle).known for handle in handles)
