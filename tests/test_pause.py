"""Pausing a function on a real server: Python and PHP workers get nothing of it
while it is paused and everything after `resume`; a worker's other function
still runs; `status` stays gearmand's; the pause outlives a restart (SQLite)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from geartrain import Admin, Client, FunctionStatus, ServerError, Worker, WorkerJob, sync
from gt_helpers import registered, wait_for, working
from serverproc import ServerProc
from wire import admin_command

pytestmark = [pytest.mark.timeout(60)]

PHP = shutil.which("php")
PEERS = Path(__file__).parent / "php_peers"


async def status_of(admin: Admin, function: str) -> FunctionStatus | None:
    return next((s for s in await admin.status() if s.function == function), None)


async def test_python_worker_gets_the_other_function_and_the_paused_after_resume(
    geartrain: ServerProc,
) -> None:
    done: list[tuple[str, bytes]] = []
    worker = Worker(geartrain.address)

    @worker.register("held")
    async def held(job: WorkerJob) -> bytes:
        done.append(("held", bytes(job.data)))
        return b""

    @worker.register("free")
    async def free(job: WorkerJob) -> bytes:
        done.append(("free", bytes(job.data)))
        return b""

    async with Admin(geartrain.address) as admin, Client(geartrain.address) as client:
        await admin.pause("held")
        assert await admin.paused() == ["held"]
        async with working(worker, "held", "free"):
            for i in range(3):
                await client.submit_background("held", b"%d" % i)
            assert await client.submit("free", b"x") == b""  # the worker is awake and serving
            assert done == [("free", b"x")]
            assert await status_of(admin, "held") == FunctionStatus("held", 3, 0, 1)
            await admin.resume("held")
            await wait_for(lambda: len(done) == 4, timeout=20)
            assert sorted(done[1:]) == [("held", b"0"), ("held", b"1"), ("held", b"2")]
            assert await admin.paused() == []


@pytest.mark.interop
@pytest.mark.skipif(PHP is None, reason="php with the gearman extension")
async def test_php_worker_gets_nothing_while_paused(geartrain: ServerProc) -> None:
    proc = subprocess.Popen(
        [str(PHP), str(PEERS / "worker.php"), geartrain.host, str(geartrain.port), "1000"]
    )
    try:
        async with Admin(geartrain.address) as admin, Client(geartrain.address) as client:
            await wait_for(lambda: registered(geartrain.address, "reverse"), timeout=20)
            await admin.pause("reverse")
            waiting = asyncio.ensure_future(client.submit("reverse", b"abc"))  # foreground
            for i in range(2):
                await client.submit_background("reverse", b"%d" % i)
            # The worker takes its other function meanwhile; it does one job at a time,
            # so after the second it has asked for work again with reverse's queued.
            for _ in range(2):
                assert (await client.submit("digest", b"")).startswith(b"0 ")
            assert await status_of(admin, "reverse") == FunctionStatus("reverse", 3, 0, 1)
            assert not waiting.done()
            await admin.resume("reverse")
            assert await asyncio.wait_for(waiting, 20) == b"cba"
            await wait_for(lambda: _total(admin, "reverse", 0), timeout=20)
    finally:
        proc.kill()
        proc.wait()


async def _total(admin: Admin, function: str, total: int) -> bool:
    status = await status_of(admin, function)
    return status is not None and status.total == total


def test_status_bytes_do_not_change(geartrain: ServerProc, gearmand: ServerProc) -> None:
    """`status` and `prioritystatus` of a paused function: the same bytes as before
    the pause, and as gearmand answers for the same queue."""

    def listings(server: ServerProc) -> tuple[bytes, bytes]:
        return admin_command(server.port, "status"), admin_command(server.port, "prioritystatus")

    for server in (geartrain, gearmand):
        admin_command(server.port, "create function held")
    asyncio.run(_submit_both(geartrain, gearmand))
    before = listings(geartrain)
    assert admin_command(geartrain.port, "pause held") == b"OK\r\n"
    assert listings(geartrain) == before == listings(gearmand)


async def _submit_both(*servers: ServerProc) -> None:
    for server in servers:
        async with Client(server.address) as client:
            await client.submit_background("held", b"x")


async def test_gearmand_has_no_pause(gearmand: ServerProc) -> None:
    async with Admin(gearmand.address) as admin:
        with pytest.raises(ServerError) as error:
            await admin.pause("f")
    assert error.value.code == "UNKNOWN_COMMAND"


async def test_a_pause_outlives_a_restart_on_sqlite(
    start_server: Callable[..., ServerProc], tmp_path: Path
) -> None:
    args = ["-q", "libsqlite3", "--libsqlite3-db", str(tmp_path / "q.sqlite3")]
    server = start_server("geartrain", args)
    async with Admin(server.address) as admin, Client(server.address) as client:
        await admin.pause("held")
        await admin.pause("other")
        await admin.resume("other")
        await client.submit_background("held", b"kept")
    server.restart()
    ran: list[bytes] = []
    worker = Worker(server.address)

    @worker.register("held")
    async def held(job: WorkerJob) -> bytes:
        ran.append(bytes(job.data))
        return b""

    async with Admin(server.address) as admin:
        assert await admin.paused() == ["held"]
        async with working(worker):
            assert await status_of(admin, "held") == FunctionStatus("held", 1, 0, 1)
            await admin.resume("held")
            await wait_for(lambda: ran == [b"kept"], timeout=20)
    server.restart()
    async with Admin(server.address) as admin:
        assert await admin.paused() == []


def admin_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, "-m", "geartrain", "admin", *args]
    return subprocess.run(argv, capture_output=True, timeout=30, check=False)


def test_the_admin_command_line(geartrain: ServerProc) -> None:
    port = str(geartrain.port)
    done = admin_cli("-p", port, "--pause", "email", "--show-paused")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"OK\nemail\n.\n", b"")
    done = admin_cli("-p", port, "--resume", "email", "--show-paused")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"OK\n.\n", b"")
    # geartrain's options are never abbreviated (gearadmin's abbreviations keep their meaning).
    done = admin_cli("-p", port, "--paus", "email")
    assert done.returncode == 1 and b"unrecognised option '--paus'" in done.stdout
    done = admin_cli("--help")
    assert all(o in done.stdout for o in (b"--pause arg", b"--resume arg", b"--show-paused"))


def test_the_admin_command_line_against_gearmand(gearmand: ServerProc) -> None:
    done = admin_cli("-p", str(gearmand.port), "--strict", "--pause", "email")
    assert done.returncode == 1
    assert done.stderr.startswith(b"Error: UNKNOWN_COMMAND")


def test_the_blocking_admin(geartrain: ServerProc) -> None:
    with sync.Admin(geartrain.address) as admin:
        admin.pause("b")
        admin.pause("a")
        assert admin.paused() == ["a", "b"]
        admin.resume("b")
        assert admin.paused() == ["a"]
