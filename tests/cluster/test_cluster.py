"""What users rely on across the servers of one cluster."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable

import pytest

from failing_peer import failed_lines
from geartrain import Admin, Client, Priority, Worker, WorkerJob
from gt_helpers import wait_for
from serverproc import admin_command

from .conftest import StartMember

pytestmark = [pytest.mark.backend, pytest.mark.timeout(60)]


def status_line(port: int, function: str) -> list[int] | None:
    for line in admin_command(port, "status").decode().splitlines():
        name, *numbers = line.split("\t")
        if name == function:
            return [int(n) for n in numbers]
    return None


def members(port: int) -> list[list[str]]:
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"cluster\r\n")
        while not reply.endswith(b".\n"):
            reply += s.recv(65536)
    return [line.split("\t") for line in reply.decode().splitlines()[:-1]]


async def test_a_job_submitted_to_one_member_runs_on_another(start_member: StartMember) -> None:
    a, b = start_member(), start_member()
    async with Client([a.address]) as client:
        handle = await client.submit_background("cl_rev", b"abc", unique=b"u1")
        # Any member knows the job and lists it in `status`.
        for port in (a.port, b.port):
            assert status_line(port, "cl_rev") == [1, 0, 0]
        async with Client([b.address]) as other:
            status = await other.get_status(handle)
            assert status.known and not status.running
            assert (await other.get_status_unique(b"u1")).known
        # The same unique key on another member is the same job.
        async with Client([b.address]) as other:
            assert await other.submit_background("cl_rev", b"abc", unique=b"u1") == handle
        ran: list[bytes] = []
        worker = Worker([b.address])

        @worker.register("cl_rev")
        async def rev(job: WorkerJob) -> bytes:
            ran.append(job.data)
            return job.data[::-1]

        await worker.start()
        try:
            await wait_for(lambda: ran == [b"abc"], timeout=10)
            await wait_for(lambda: _not(known(a.port, handle)), timeout=10)
        finally:
            worker.stop(graceful=False)
            await worker.wait()
        assert ran == [b"abc"]


async def _not(result: Awaitable[bool]) -> bool:
    return not await result


async def known(port: int, handle: bytes) -> bool:
    async with Client([f"127.0.0.1:{port}"]) as c:
        return (await c.get_status(handle)).known


async def test_foreground_jobs_stay_on_their_server(start_member: StartMember) -> None:
    a, b = start_member(), start_member()
    worker_b = Worker([b.address])

    @worker_b.register("cl_fg")
    async def on_b(job: WorkerJob) -> bytes:
        return b"b"

    worker_a = Worker([a.address])

    @worker_a.register("cl_fg")
    async def on_a(job: WorkerJob) -> bytes:
        return b"a"

    await worker_b.start()
    try:
        async with Client([a.address]) as client:
            pending = asyncio.ensure_future(client.submit("cl_fg", b"x"))
            await asyncio.sleep(1.5)
            assert not pending.done()  # b's worker never sees a's foreground job
            await worker_a.start()
            assert await asyncio.wait_for(pending, 10) == b"a"
    finally:
        for w in (worker_a, worker_b):
            w.stop(graceful=False)
            await w.wait()


def test_cluster_lists_its_members(start_member: StartMember) -> None:
    a, b = start_member(), start_member()
    rows = members(a.port)
    assert len(rows) == 2
    assert [r[5] for r in rows].count("*") == 1  # this server is marked
    assert all(0 < float(r[3]) <= 3.0 for r in rows)  # lease seconds left
    b.stop()  # a clean stop leaves the cluster at once
    assert len(members(a.port)) == 1


@pytest.mark.parametrize("queue", ["sqlite", "builtin", "mysql"])
def test_cluster_refuses_queues_that_cannot_be_shared(queue: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geartrain", "server", "--cluster", "-q", queue]
        + ["--mysql-db", "test", "--check-args"],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert f"--cluster needs -q postgres or -q redis (the {queue} queue" in lines[-1]


async def test_job_retries_count_server_deaths(start_member: StartMember) -> None:
    # -j 1: one attempt in all; a job whose server dies under it fails, not reruns.
    a, b = start_member("-j", "1"), start_member("-j", "1")
    started: list[int] = []

    def worker_on(port: int, address: str) -> Worker:
        worker = Worker([address], max_backoff=0.3)

        @worker.register("cl_once")
        async def slow(job: WorkerJob) -> bytes:
            started.append(port)
            await asyncio.sleep(30)
            return b""

        return worker

    on_a, on_b = worker_on(a.port, a.address), worker_on(b.port, b.address)
    await on_a.start()
    try:
        async with Client([a.address]) as client:
            await client.submit_background("cl_once", b"x")
        await wait_for(lambda: started == [a.port], timeout=10)
        await on_b.start()
        a.kill()
        await wait_for(lambda: "1 past --job-retries moved to the failed set" in b.log(), 15)
        assert status_line(b.port, "cl_once") in (None, [0, 0, 1])
        await asyncio.sleep(1.5)  # a poll later: nothing for b's worker
        assert started == [a.port]
        # The death counted as an attempt; the job is kept in the cluster's failed set.
        [fields] = failed_lines(b.port)
        assert fields[1] == b"cl_once" and fields[3] == b"1"
        assert fields[5].startswith(b"worker_lost: its server stopped renewing its lease")
    finally:
        for w in (on_a, on_b):
            w.stop(graceful=False)
            await w.wait()


async def test_jobs_held_for_a_worker_that_left_go_to_another_member(
    start_member: StartMember,
) -> None:
    a, b = start_member(), start_member()
    ran: list[tuple[int, bytes]] = []

    def worker_on(port: int, address: str, seconds: float) -> Worker:
        worker = Worker([address])

        @worker.register("cl_left")
        async def work(job: WorkerJob) -> bytes:
            ran.append((port, job.data))
            await asyncio.sleep(seconds)
            return b""

        return worker

    on_a = worker_on(a.port, a.address, 30)
    await on_a.start()
    async with Client([b.address]) as client:
        for i in range(3):
            await client.submit_background("cl_left", b"%d" % i)
    await wait_for(lambda: len(ran) == 1, timeout=10)
    await asyncio.sleep(1.5)  # a holds the next job for its busy worker
    on_a.stop(graceful=False)
    await on_a.wait()
    on_b = worker_on(b.port, b.address, 0)
    await on_b.start()
    try:
        await wait_for(lambda: {d for p, d in ran if p == b.port} == {b"0", b"1", b"2"}, timeout=15)
    finally:
        on_b.stop(graceful=False)
        await on_b.wait()


async def test_claims_take_priority_then_submission_order(start_member: StartMember) -> None:
    a, b = start_member(), start_member()
    order = [(Priority.LOW, b"l1"), (Priority.NORMAL, b"n1"), (Priority.HIGH, b"h1")]
    order += [(Priority.LOW, b"l2"), (Priority.NORMAL, b"n2"), (Priority.HIGH, b"h2")]
    async with Client([a.address]) as client:
        for priority, data in order:
            await client.submit_background("cl_order", data, priority=priority)
    ran: list[bytes] = []
    worker = Worker([b.address])  # one job at a time, on the other member

    @worker.register("cl_order")
    async def work(job: WorkerJob) -> bytes:
        ran.append(job.data)
        return b""

    await worker.start()
    try:
        await wait_for(lambda: len(ran) == 6, timeout=15)
    finally:
        worker.stop(graceful=False)
        await worker.wait()
    assert ran == [b"h1", b"h2", b"n1", b"n2", b"l1", b"l2"]


async def test_epoch_jobs_run_when_due_on_any_member(start_member: StartMember) -> None:
    a, b = start_member(), start_member()
    ran: list[float] = []
    worker = Worker([b.address])

    @worker.register("cl_epoch")
    async def work(job: WorkerJob) -> bytes:
        ran.append(time.time())
        return b""

    await worker.start()
    try:
        due = int(time.time()) + 3
        async with Client([a.address]) as client:
            await client.submit_background("cl_epoch", b"x", when=due)
        assert status_line(b.port, "cl_epoch") == [1, 0, 1]  # known everywhere, not running
        await wait_for(lambda: len(ran) == 1, timeout=15)
    finally:
        worker.stop(graceful=False)
        await worker.wait()
    assert ran[0] >= due - 0.05  # by the store's clock, which is this machine's here


async def test_admin_replies_leave_in_request_order(start_member: StartMember) -> None:
    """Answers that need the shared store (status, failed jobs, cluster) do not let
    the ones after them overtake: a client matches answers to commands by order."""
    member = start_member()
    with socket.create_connection(("127.0.0.1", member.port), timeout=10) as s:
        s.sendall(b"status\nversion\nshow failed jobs\ngetpid\ncluster\nversion\n")
        reply = b""
        while reply.count(b".\n") < 3 or reply.count(b"OK") < 3:
            reply += s.recv(65536)
    version = admin_command(member.port, "version")
    pid = b"OK %d\n" % member.pid
    status, rest = reply.split(b".\n", 1)
    assert b"OK" not in status
    assert rest.startswith(version)
    failed, rest = rest[len(version) :].split(b".\n", 1)
    assert failed == b""
    assert rest.startswith(pid)
    members_listing, rest = rest[len(pid) :].split(b".\n", 1)
    assert members_listing.count(b"\n") == 1 and members_listing.endswith(b"*\n")
    assert rest == version
    async with Admin(member.address) as admin:
        status_rows, text, pid_number = await asyncio.gather(
            admin.status(), admin.version(), admin.getpid()
        )
    assert text.strip() and pid_number == member.pid
