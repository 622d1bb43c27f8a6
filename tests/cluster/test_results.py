"""Kept results of background jobs across the members of a cluster (PostgreSQL and
Redis): a result kept by a function's policy is read from any member, waited
for from a member that does not hold the job; a submission's keep_result travels
with its job to the member that runs it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from geartrain import Client, JobException, NoResult, Retry, Worker, WorkerJob
from gt_helpers import working
from serverproc import admin_command

from .conftest import StartMember

pytestmark = [pytest.mark.backend, pytest.mark.timeout(60)]

RESULT = b"\0binary\xff result"


async def test_a_result_is_read_from_any_member(start_member: StartMember, tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[functions."cl_kept"]\nkeep_results = "10m"\n')
    a, b = (start_member("--settings", str(settings)) for _ in range(2))
    worker = Worker([a.address])

    @worker.register("cl_kept")
    async def kept(job: WorkerJob) -> bytes:
        return RESULT + job.data

    @worker.register("cl_plain")
    async def plain(job: WorkerJob) -> bytes:
        return job.data

    async with Client([b.address]) as client:
        job = await client.submit_background("cl_kept", b"1", unique=b"r-1")
        assert (await client.result_status(job)).status == "queued"  # type: ignore[union-attr]
        unkept = await client.submit_background("cl_plain", b"2", unique=b"r-2")
        async with working(worker, "cl_kept", "cl_plain"):
            # b never holds the job: it waits on what the shared store says.
            assert await client.result(job, timeout=30) == RESULT + b"1"
            # Not kept: nothing once it ended.
            assert await client.result_status(unkept, timeout=30) is None
        with pytest.raises(NoResult):
            await client.result(unkept, timeout=0)
    expected = b"OK complete " + base64.b64encode(RESULT + b"1") + b"\n"
    for member in (a, b):
        assert admin_command(member.port, "result " + job.decode()) == expected


async def test_a_submissions_keep_result_is_kept_by_the_member_that_ran_it(
    start_member: StartMember,
) -> None:
    """No policy keeps cl_asked's results: the submission asks, on b; a's worker
    runs the job; both members answer with its result, a failure's too."""
    a, b = start_member(), start_member()
    worker = Worker([a.address])

    @worker.register("cl_asked")
    async def asked(job: WorkerJob) -> bytes:
        if job.data == b"bad":
            raise ValueError("bad input")
        return RESULT + job.data

    async with Client([b.address]) as client:
        job = await client.submit_background("cl_asked", b"1", keep_result=600)
        failing = await client.submit_background("cl_asked", b"bad", keep_result=600)
        unasked = await client.submit_background("cl_asked", b"2")
        assert (await client.result_status(job)).status == "queued"  # type: ignore[union-attr]
        async with working(worker, "cl_asked"):
            assert await client.result(job, timeout=30) == RESULT + b"1"
            with pytest.raises(JobException, match="bad input"):
                await client.result(failing, timeout=30)
            assert await client.result_status(unasked, timeout=30) is None
    async with Client([a.address]) as client:
        assert await client.result(job, timeout=0) == RESULT + b"1"
    expected = b"OK complete " + base64.b64encode(RESULT + b"1") + b"\n"
    for member in (a, b):
        assert admin_command(member.port, "result " + job.decode()) == expected


async def test_a_submissions_retry_policy_holds_on_the_member_that_runs_it(
    start_member: StartMember,
) -> None:
    """The policy given on b reaches a's worker with the job: attempts 1, 2, 3 of 3."""
    a, b = start_member(), start_member()
    worker = Worker([a.address])
    seen: list[tuple[int | None, int | None]] = []

    @worker.register("cl_flaky")
    async def flaky(job: WorkerJob) -> bytes:
        seen.append((job.attempt, job.attempts))
        if len(seen) < 3:
            raise RuntimeError(f"call {len(seen)} failed")
        return b"ok after %d" % len(seen)

    async with Client([b.address]) as client:
        retry = Retry(attempts=3, backoff=0.01, jitter=0)
        job = await client.submit_background("cl_flaky", b"x", retry=retry, keep_result=600)
        async with working(worker, "cl_flaky"):
            assert await client.result(job, timeout=30) == b"ok after 3"
    assert seen == [(1, 3), (2, 3), (3, 3)]
