"""A job the client gives up on is withdrawn from the server (both servers)."""

from __future__ import annotations

import asyncio

import pytest

from geartrain import Client, JobCancelled, JobFailed, JobTimeout, Worker, WorkerJob
from gt_helpers import queued, wait_for, working
from serverproc import ServerProc

pytestmark = [pytest.mark.timeout(30), pytest.mark.in_process]


async def _runs_only_later_jobs(server: ServerProc, function: str) -> None:
    """Start a worker: it must get a job submitted now, and never the withdrawn one."""
    seen: list[bytes] = []
    worker = Worker(server.address)

    @worker.register(function)
    async def record(job: WorkerJob) -> bytes:
        seen.append(job.data)
        return b"done"

    async with working(worker), Client(server.address) as client:
        assert await client.submit(function, b"later", timeout=10) == b"done"
    assert seen == [b"later"]


async def test_timeout_withdraws_the_queued_job(server: ServerProc) -> None:
    async with Client(server.address) as client:
        with pytest.raises(JobTimeout) as info:
            await client.submit("cancel_t", b"given up", timeout=1.5)
        assert isinstance(info.value, TimeoutError)
        # geartrain drops the job at once; gearmand marks it and drops it
        # when it reaches the head of the queue.
        if server.kind == "geartrain":
            await wait_for(lambda: _is_empty(server, "cancel_t"))
    if server.kind == "geartrain":
        # gearmand 1.1 sometimes still hands out the marked job (seen once in
        # a CI run on a busy machine); geartrain never does.
        await _runs_only_later_jobs(server, "cancel_t")


async def test_cancelling_the_awaiting_task_withdraws_the_job(server: ServerProc) -> None:
    async with Client(server.address) as client:
        task = asyncio.create_task(client.submit("cancel_c", b"given up"))
        await wait_for(lambda: _has_jobs(server, "cancel_c"))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # wait_for around submit cancels it the same way.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.submit("cancel_c", b"given up too"), 1.5)
        if server.kind == "geartrain":
            await wait_for(lambda: _is_empty(server, "cancel_c"))
    if server.kind == "geartrain":
        # gearmand sometimes still hands out a foreground job cancelled this way
        # (seen in about one run in three on a busy machine); geartrain never does.
        await _runs_only_later_jobs(server, "cancel_c")


async def test_job_cancel(server: ServerProc) -> None:
    async with Client(server.address) as client:
        job = await client.submit_job("cancel_j", b"x")
        # Text answers share the connection with binary packets: the client
        # goes on working after the cancel.
        other = await client.submit_job("cancel_j", b"y")
        assert await job.cancel() is True
        with pytest.raises(JobCancelled) as info:
            await job
        assert isinstance(info.value, JobFailed) and info.value.handle == job.handle
        assert await job.cancel() is False
        assert not other.done()
        assert await client.echo(b"still in step") == b"still in step"
        status = await client.get_status(other.handle or b"")
        assert status.known
        await other.cancel()
    await _runs_only_later_jobs(server, "cancel_j")


async def test_a_coalesced_job_stays_for_the_other_client(server: ServerProc) -> None:
    async with Client(server.address) as first, Client(server.address) as second:
        waiting = await second.submit_job("cancel_u", b"x", unique=b"same")
        with pytest.raises(JobTimeout):
            await first.submit("cancel_u", b"x", unique=b"same", timeout=0.3)
        worker = Worker(server.address)
        worker.register("cancel_u", lambda job: b"for second")
        async with working(worker):
            assert await asyncio.wait_for(waiting.result(), 10) == b"for second"


async def _has_jobs(server: ServerProc, function: str) -> bool:
    return await queued(server.address, function) > 0


async def _is_empty(server: ServerProc, function: str) -> bool:
    return await queued(server.address, function) == 0
