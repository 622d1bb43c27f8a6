"""Kept results of background jobs across the members of a cluster (PostgreSQL and
Redis): a result kept by a function's policy is read from any member, waited
for from a member that does not hold the job; the keep_result option is refused."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from geartrain import Client, NoResult, ServerError, Worker, WorkerJob
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
        with pytest.raises(ServerError, match="UNKNOWN_OPTION"):
            await client.submit_background("cl_kept", b"3", keep_result=60)
    expected = b"OK complete " + base64.b64encode(RESULT + b"1") + b"\n"
    for member in (a, b):
        assert admin_command(member.port, "result " + job.decode()) == expected
