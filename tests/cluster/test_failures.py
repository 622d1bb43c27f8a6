"""Retries, the failed-job set, schedules and cancel across the members of a cluster.

Three servers on one shared store (each test runs on PostgreSQL and on Redis)
and real workers (failing_worker.php).  A retry waits in the shared store and
may run on any member; the failed set is the cluster's, so every member lists
the same and any member retries or deletes; a recurring schedule read by every
member fires once per minute."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from console.conftest import Console
from failing_peer import PhpWorker, failed_lines
from geartrain import Client, Worker, WorkerJob
from geartrain.protocol import PacketType
from gt_helpers import registered, wait_for, working
from serverproc import admin_command, free_port
from wire import Wire

from .conftest import StartMember
from .test_cluster import _not, known

pytestmark = [pytest.mark.backend, pytest.mark.interop, pytest.mark.timeout(120)]

BACKOFF = 1.0
SETTINGS = f"""
[functions."flaky_*"]
attempts = 3
retry_on = ["fail"]
backoff_base = {BACKOFF}
jitter = 0.0
"""


@pytest.fixture
def settings(tmp_path: Path) -> str:
    path = tmp_path / "settings.toml"
    path.write_text(SETTINGS)
    return str(path)


def failed_handles(port: int) -> list[bytes]:
    return [fields[0] for fields in failed_lines(port)]


@pytest.mark.slow
async def test_a_failing_job_is_retried_after_its_backoff_and_kept_once_for_the_cluster(
    start_member: StartMember, settings: str
) -> None:
    console_port = free_port()
    a, b = start_member("--settings", settings), start_member("--settings", settings)
    c = start_member("--settings", settings, "--console-port", str(console_port))
    workers = [PhpWorker(a.port), PhpWorker(b.port)]
    try:
        for s in (a, b):
            await wait_for(lambda s=s: registered(s.address, "flaky_fail"), timeout=20)
        async with Client([c.address]) as client:
            handle = await client.submit_background("flaky_fail", b"x", unique=b"f-1")

        def starts() -> list[float]:
            return sorted(at for w in workers for _f, h, _u, at in w.starts if h == handle.decode())

        await wait_for(lambda: len(starts()) == 3, timeout=30)
        first, second, third = starts()
        # Each retry waits its backoff (1 s, then 2 s), whichever member runs it.
        assert BACKOFF <= second - first < BACKOFF + 5
        assert 2 * BACKOFF <= third - second < 2 * BACKOFF + 5

        # Failed for good: one record, the same on every member.
        await wait_for(lambda: all(failed_handles(s.port) == [handle] for s in (a, b, c)), 10)
        fields = failed_lines(b.port)[0]
        assert fields[1:4] == [b"flaky_fail", b"f-1", b"3"] and fields[5] == b"fail"
        listed = Console(c, console_port).get("/api/failed")
        assert listed["total"] == 1 and listed["failed"][0]["handle"] == handle.decode()
        assert [o["kind"] for o in listed["failed"][0]["outcomes"]] == ["fail"] * 3
        assert not await known(a.port, handle)  # a failed job is no job any more
        metric = b'geartrain_jobs_failed_stored{function="flaky_fail"} 1.0'
        await wait_for(lambda: metric in Console(c, console_port).request("GET", "/metrics")[2], 10)

        # `retry failed` on a member where it never ran: it runs again, same handle.
        assert admin_command(c.port, f"retry failed {handle.decode()}") == b"OK\r\n"
        assert failed_handles(a.port) == []
        await wait_for(lambda: len(starts()) == 4, timeout=15)
        await wait_for(lambda: failed_handles(a.port) == [handle], timeout=20)  # 3 more attempts
        assert admin_command(a.port, f"delete failed {handle.decode()}") == b"OK\r\n"
        assert admin_command(b.port, f"delete failed {handle.decode()}").startswith(
            b"ERR UNKNOWN_JOB"
        )
        assert failed_handles(c.port) == []
    finally:
        for w in workers:
            w.stop()


async def test_cancel_from_any_member(start_member: StartMember) -> None:
    console_port = free_port()
    a, b = start_member(), start_member("--console-port", str(console_port))
    async with Client([a.address]) as client:
        queued = await client.submit_background("cl_cancel", b"queued")
        other = await client.submit_background("cl_cancel", b"by console")
    # No worker anywhere: the jobs wait in the shared store; any member deletes them.
    assert admin_command(b.port, f"cancel job {queued.decode()}") == b"OK\r\n"
    assert not await known(a.port, queued)
    assert admin_command(b.port, f"cancel job {queued.decode()}").startswith(b"ERR UNKNOWN_JOB")
    console = Console(b, console_port)
    assert console.act(f"/api/jobs/{other.decode()}/cancel")[0] == 200
    assert not await known(a.port, other)

    # A job running on a: only a cancels it (as a single server does).
    started = asyncio.Event()
    worker = Worker([a.address])

    @worker.register("cl_cancel")
    async def slow(job: WorkerJob) -> bytes:
        started.set()
        await asyncio.sleep(30)
        return b""

    await worker.start()
    try:
        async with Client([b.address]) as client:
            running = await client.submit_background("cl_cancel", b"running")
        await asyncio.wait_for(started.wait(), 15)
        refused = admin_command(b.port, f"cancel job {running.decode()}")
        assert refused.startswith(b"ERR JOB_CLAIMED")
        assert console.act(f"/api/jobs/{running.decode()}/cancel")[0] == 409
        assert admin_command(a.port, f"cancel job {running.decode()}") == b"OK\r\n"
        await wait_for(lambda: _not(known(b.port, running)), timeout=10)  # deleted in a batch
    finally:
        worker.stop(graceful=False)
        await worker.wait()


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_a_recurring_schedule_fires_once_per_minute_for_the_cluster(
    start_member: StartMember, tmp_path: Path
) -> None:
    path = tmp_path / "schedule.toml"
    path.write_text(
        '[[schedules]]\nname = "tick"\ncron = "* * * * *"\nfunction = "cl_tick"\npayload = "t"\n'
    )
    members = [start_member("--settings", str(path)) for _ in range(3)]
    runs: list[tuple[int, bytes]] = []
    workers = []
    for m in members:
        worker = Worker([m.address])

        @worker.register("cl_tick")
        async def tick(job: WorkerJob, port: int = m.port) -> bytes:
            runs.append((port, job.unique))
            return b""

        workers.append(worker)
        await worker.start()
    try:
        # Every member fires at the next minute; one job runs (within about a minute).
        await wait_for(lambda: len(runs) >= 1, timeout=75)
        await asyncio.sleep(3)  # time for any second job to run
        assert len(runs) == 1, runs
        minute = time.strftime("%Y%m%d%H%M", time.gmtime())
        assert runs[0][1].decode().startswith("cron:tick:")
        assert runs[0][1].decode() <= f"cron:tick:{minute}"
        fired = [m for m in members if "Schedule tick fired job" in m.log()]
        assert len(fired) == 1
    finally:
        for w in workers:
            w.stop(graceful=False)
            await w.wait()


async def test_submit_job_sched_runs_on_any_member(start_member: StartMember) -> None:
    a, b = start_member(), start_member()
    ran: list[bytes] = []
    worker = Worker([b.address])

    @worker.register("cl_sched")
    async def run(job: WorkerJob) -> bytes:
        ran.append(job.data)
        return b""

    async with working(worker, "cl_sched"):
        with Wire(a.port) as client:  # every field empty: any minute, so this one
            client.send(PacketType.SUBMIT_JOB_SCHED, b"cl_sched", b"", *[b""] * 5, b"now")
            client.expect(PacketType.JOB_CREATED)
        await wait_for(lambda: ran == [b"now"], timeout=10)


async def test_the_failed_sets_bounds_from_the_settings_file_hold_from_the_start(
    start_member: StartMember, tmp_path: Path
) -> None:
    path = tmp_path / "bounded.toml"
    path.write_text("[failed]\nmax_jobs = 1\n")
    member = start_member("--settings", str(path))
    worker = Worker([member.address])
    ran: list[bytes] = []

    @worker.register("doomed")
    async def doomed(job: WorkerJob) -> bytes:
        ran.append(job.data)
        raise RuntimeError("no")

    async with working(worker, "doomed"), Client([member.address]) as client:
        for i in range(3):
            await client.submit_background("doomed", b"%d" % i)
        await wait_for(lambda: len(ran) == 3, timeout=20)
        await wait_for(lambda: len(failed_handles(member.port)) == 1, timeout=20)
