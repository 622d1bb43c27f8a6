"""A pause asked of one member holds on every member of the cluster."""

from __future__ import annotations

import pytest

from geartrain import Admin, Client, Worker, WorkerJob
from gt_helpers import wait_for
from serverproc import admin_command

from .conftest import StartMember

pytestmark = [pytest.mark.backend, pytest.mark.timeout(90)]


def paused(port: int) -> bytes:
    return admin_command(port, "paused")


async def test_a_pause_on_one_member_holds_on_another(start_member: StartMember) -> None:
    a, b = start_member(), start_member()
    ran: list[tuple[str, bytes]] = []
    worker = Worker([b.address])

    @worker.register("cl_held")
    async def held(job: WorkerJob) -> bytes:
        ran.append(("cl_held", bytes(job.data)))
        return b""

    @worker.register("cl_free")
    async def free(job: WorkerJob) -> bytes:
        ran.append(("cl_free", bytes(job.data)))
        return b""

    async with Admin(a.address) as admin:
        await admin.pause("cl_held")
    await wait_for(lambda: paused(b.port) == b"cl_held\n.\n", timeout=30)
    await worker.start()
    try:
        async with Client([a.address]) as client:
            for i in range(3):
                await client.submit_background("cl_held", b"%d" % i)
            await client.submit_background("cl_free", b"x")
            await wait_for(lambda: ran == [("cl_free", b"x")], timeout=30)
            # Submitted after cl_free: claimed and run by now were the pause not there.
            await client.submit_background("cl_free", b"y")
            await wait_for(lambda: len(ran) == 2, timeout=30)
            assert [name for name, _data in ran] == ["cl_free", "cl_free"]
            async with Admin(b.address) as admin:
                assert {s.function: s.total for s in await admin.status()}["cl_held"] == 3
                await admin.resume("cl_held")  # on the other member this time
            await wait_for(lambda: len(ran) == 5, timeout=30)
            assert sorted(d for name, d in ran if name == "cl_held") == [b"0", b"1", b"2"]
    finally:
        worker.stop(graceful=False)
        await worker.wait()
    await wait_for(lambda: paused(a.port) == b".\n", timeout=30)


def test_a_member_that_joins_later_finds_the_pause(start_member: StartMember) -> None:
    a = start_member()
    assert admin_command(a.port, "pause cl_later") == b"OK\r\n"
    a.stop()
    b = start_member()
    assert paused(b.port) == b"cl_later\n.\n"
