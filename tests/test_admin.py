"""The asyncio admin client against a real server (geartrain and gearmand)."""

from __future__ import annotations

import asyncio

import pytest

from geartrain import (
    Admin,
    Client,
    ConnectionLost,
    FunctionStatus,
    JobFailed,
    JobInfo,
    Priority,
    PriorityStatus,
    ServerError,
    Worker,
    WorkerJob,
)
from gt_helpers import wait_for, working
from serverproc import ServerProc, free_port

pytestmark = [pytest.mark.timeout(30), pytest.mark.in_process]


async def test_status_counts_jobs_and_workers(server: ServerProc) -> None:
    release = asyncio.Event()
    worker = Worker(server.address)

    @worker.register("busy")
    async def busy(job: WorkerJob) -> bytes:
        await release.wait()
        return b""

    async with Client(server.address) as client, Admin(server.address) as admin:
        for _ in range(3):
            await client.submit_background("busy", b"x")
        assert FunctionStatus("busy", 3, 0, 0) in await admin.status()
        async with working(worker):
            await wait_for(lambda: _has(admin, FunctionStatus("busy", 3, 1, 1)))
            status = {s.function: s for s in await admin.status()}["busy"]
            assert status.queued == 2
            release.set()
            await wait_for(lambda: _has(admin, FunctionStatus("busy", 0, 0, 1)))


async def _has(admin: Admin, status: FunctionStatus) -> bool:
    return status in await admin.status()


async def test_priority_status(server: ServerProc) -> None:
    async with Client(server.address) as client, Admin(server.address) as admin:
        await client.submit_background("p", b"", priority=Priority.HIGH)
        for _ in range(2):
            await client.submit_background("p", b"", priority=Priority.LOW)
        await client.submit_background("p", b"")
        assert PriorityStatus("p", 1, 1, 2, 0) in await admin.priority_status()


async def test_workers_lists_connections(server: ServerProc) -> None:
    worker = Worker(server.address, client_id="w-1")
    worker.register("f1", lambda job: b"")
    worker.register("f2", lambda job: b"")
    async with working(worker, "f1", "f2"), Admin(server.address) as admin:
        workers = await admin.workers()
    mine = [w for w in workers if w.client_id == "w-1"]
    assert len(mine) == 1
    assert set(mine[0].functions) == {"f1", "f2"}
    assert mine[0].ip == "127.0.0.1" and mine[0].fd > 0
    # The admin connection itself is listed too, without a client id.
    assert any(w.client_id is None and w.functions == () for w in workers)


async def test_show_jobs_and_unique_jobs(server: ServerProc) -> None:
    async with Client(server.address) as client, Admin(server.address) as admin:
        handle = await client.submit_background("s", b"", unique="u-1")
        jobs = await admin.show_jobs()
        assert JobInfo(handle, 0, False, True) in jobs
        assert await admin.show_unique_jobs() == ["u-1"]


async def test_values(server: ServerProc) -> None:
    async with Admin(server.address) as admin:
        assert await admin.getpid() == server.pid
        version = await admin.version()
        assert version and not version.startswith("OK")
        levels = ["FATAL", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"]
        assert await admin.verbose() in levels
        assert 0 < await admin.ping() < 1


async def test_maxqueue_limits_a_function(server: ServerProc) -> None:
    async with Client(server.address) as client, Admin(server.address) as admin:
        await admin.create_function("limited")
        await admin.maxqueue("limited", 1)
        await client.submit_background("limited", b"1")
        with pytest.raises(ServerError) as info:
            await client.submit_background("limited", b"2")
        assert info.value.code == "QUEUE_ERROR"
        await admin.maxqueue("limited", (0, 0, 0))  # unlimited again
        await client.submit_background("limited", b"3")
        await admin.maxqueue("limited")


async def test_cancel_job(server: ServerProc) -> None:
    ran: list[bytes] = []
    worker = Worker(server.address)
    worker.register("c", lambda job: ran.append(job.data))
    async with Client(server.address) as client, Admin(server.address) as admin:
        handle = await client.submit_background("c", b"cancelled")
        assert await admin.cancel_job(handle) is True
        assert await admin.cancel_job(b"H:nowhere:404") is False
        await client.submit_background("c", b"kept")
        async with working(worker):
            await wait_for(lambda: bool(ran))
            await asyncio.sleep(0.1)
    assert ran == [b"kept"]


async def test_create_and_drop_function(server: ServerProc) -> None:
    async with Admin(server.address) as admin:
        await admin.create_function("made")
        assert "made" in [s.function for s in await admin.status()]
        await admin.drop_function("made")
        assert "made" not in [s.function for s in await admin.status()]
        with pytest.raises(ServerError) as info:
            await admin.drop_function("never-made")
        assert "not found" in info.value.text


async def test_drop_function_with_workers_is_refused(server: ServerProc) -> None:
    worker = Worker(server.address)
    worker.register("held", lambda job: b"")
    async with working(worker), Admin(server.address) as admin:
        with pytest.raises(ServerError):
            await admin.drop_function("held")


async def test_raw_command_keeps_line_endings(server: ServerProc) -> None:
    async with Admin(server.address) as admin:
        assert await admin.command("status") == b".\n"
        assert await admin.command("create function x") == b"OK\r\n"
        assert (await admin.command("version")).endswith(b"\n")
        unknown = await admin.command("frobnicate")
        assert unknown == b"ERR UNKNOWN_COMMAND Unknown+server+commandfrobnicate\r\n"


async def test_shutdown_on_gearmand_is_an_unknown_command(gearmand: ServerProc) -> None:
    # gearmand 1.1.15 removed "shutdown"; it answers ERR UNKNOWN_COMMAND.
    async with Admin(gearmand.address) as admin:
        with pytest.raises(ServerError) as info:
            await admin.shutdown()
        assert info.value.code == "UNKNOWN_COMMAND"


@pytest.mark.parametrize("graceful", [False, True])
async def test_shutdown_stops_geartrain(geartrain: ServerProc, graceful: bool) -> None:
    async with Admin(geartrain.address) as admin:
        await admin.shutdown(graceful=graceful)
    assert geartrain.proc is not None
    await asyncio.to_thread(geartrain.proc.wait, 10)


async def test_unreachable_server_raises_connection_lost() -> None:
    async with Admin(f"127.0.0.1:{free_port()}") as admin:
        with pytest.raises(ConnectionLost):
            await admin.status()


async def test_pipelined_commands(server: ServerProc) -> None:
    async with Admin(server.address) as admin:
        results = await asyncio.gather(
            admin.status(), admin.version(), admin.workers(), admin.getpid(), admin.ping()
        )
    assert results[3] == server.pid


async def test_cancelling_a_waiting_foreground_job_fails_it(server: ServerProc) -> None:
    async with Client(server.address) as client, Admin(server.address) as admin:
        job = await client.submit_job("nobody", b"x")
        assert job.handle is not None
        assert (await client.get_status(job.handle)).known  # remembered: no server= needed
        assert await admin.cancel_job(job.handle)
        with pytest.raises(JobFailed):
            await asyncio.wait_for(job.result(), 5)


async def test_admin_takes_a_server_list_and_skips_a_dead_server(server: ServerProc) -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with Admin([dead, server.address]) as admin:
        assert (await admin.version()).strip()
        assert str(admin.server) == server.address
    async with Admin([server.address]) as admin:
        assert await admin.getpid() == server.pid
