"""Several servers: a client and a worker survive losing one of them.

With two servers, killing one while jobs run loses no foreground job (the
client submits those it had there again on the other server), the worker
keeps serving the survivor, and a server that comes back is used again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from geartrain import Client, NoServersAvailable, Worker, WorkerJob
from geartrain.client import hash_key
from gt_helpers import registered, wait_for
from serverproc import ServerProc, free_port

pytestmark = [pytest.mark.timeout(60)]

KINDS = ["geartrain", "gearmand"]


def _worker(addresses: list[str]) -> tuple[Worker, list[bytes]]:
    runs: list[bytes] = []
    worker = Worker(addresses, concurrency=4, max_backoff=0.2)

    @worker.register("work")
    async def work(job: WorkerJob) -> bytes:
        runs.append(job.data)
        await asyncio.sleep(0.1)
        return job.data.upper()

    return worker, runs


async def _wait_both(addresses: list[str]) -> None:
    for address in addresses:
        await wait_for(lambda a=address: registered(a, "work"))


@pytest.mark.parametrize(
    "kinds",
    [("geartrain", "geartrain"), ("gearmand", "gearmand"), ("geartrain", "gearmand")],
    ids="+".join,
)
@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_stopping_a_server_mid_run_loses_no_job(
    start_server: Callable[..., ServerProc], kinds: tuple[str, str], how: str
) -> None:
    servers = [start_server(kind) for kind in kinds]
    addresses = [s.address for s in servers]
    worker, runs = _worker(addresses)
    await worker.start()
    try:
        await _wait_both(addresses)
        async with Client(addresses, max_backoff=0.2) as client:
            jobs = await client.submit_batch(("work", f"job-{i}") for i in range(40))
            assert len({job.server for job in jobs}) == 2  # spread over both servers
            await wait_for(lambda: len(runs) >= 8)
            if how == "kill":
                servers[0].kill()  # a crash
            else:
                await asyncio.to_thread(servers[0].stop)  # SIGTERM: a clean shutdown
            results = await asyncio.wait_for(asyncio.gather(*jobs), 20)
            assert results == [f"JOB-{i}".encode() for i in range(40)]
            assert sum(job.resubmits for job in jobs) > 0
            assert all(str(job.server) == addresses[1] for job in jobs if job.resubmits)
            # The worker lost one server and keeps serving the other.
            await wait_for(lambda: [str(a) for a in worker.connected] == [addresses[1]])
            assert await client.submit("work", b"after") == b"AFTER"
    finally:
        worker.stop(graceful=False)
        await worker.wait()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_server_that_comes_back_is_used_again(
    start_server: Callable[..., ServerProc], kind: str
) -> None:
    servers = [start_server(kind), start_server(kind)]
    addresses = [s.address for s in servers]
    worker, _ = _worker(addresses)
    await worker.start()
    try:
        await _wait_both(addresses)
        async with Client(addresses, max_backoff=0.2) as client:
            servers[0].kill()
            started = time.monotonic()
            for i in range(6):  # every submission skips the dead server quickly
                assert await client.submit("work", f"x{i}") == f"X{i}".encode()
            assert time.monotonic() - started < 3
            start_server(kind, port=servers[0].port)
            await wait_for(lambda: registered(addresses[0], "work"))
            await asyncio.sleep(0.3)  # past the client's backoff for the server
            jobs = [await client.submit_job("work", f"y{i}") for i in range(4)]
            assert {str(job.server) for job in jobs} == set(addresses)
            await asyncio.gather(*jobs)
    finally:
        worker.stop(graceful=False)
        await worker.wait()


@pytest.mark.parametrize("kind", KINDS)
async def test_unique_keys_stick_to_their_server(
    start_server: Callable[..., ServerProc], kind: str
) -> None:
    servers = [start_server(kind), start_server(kind)]
    addresses = [s.address for s in servers]
    keys = [f"key-{i}" for i in range(8)]
    async with Client(addresses) as client, Client(addresses) as other:
        for key in keys:
            handle = await client.submit_background("nobody", b"x", unique=key)
            home = addresses[hash_key(key.encode()) % 2]
            assert (await client.get_status(handle, server=home)).known
            # Another client sends the same key to the same server, so the
            # duplicate coalesces across the cluster: same handle.
            assert await other.submit_background("nobody", b"x", unique=key) == handle
        # With a key's server down, its jobs go to the other one.
        down = hash_key(keys[0].encode()) % 2
        servers[down].kill()
        handle = await client.submit_background("nobody", b"z", unique=keys[0])
        assert (await client.get_status(handle, server=addresses[1 - down])).known


async def test_all_servers_down_then_one_returns(
    start_server: Callable[..., ServerProc],
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    async with Client(address, max_backoff=0.1) as client:
        with pytest.raises(NoServersAvailable):
            await client.submit("f", b"x")
        srv = start_server("gearmand", port=port)
        assert await client.submit_background("f", b"x")
        srv.kill()
        with pytest.raises(NoServersAvailable):
            await client.submit_background("f", b"x")
