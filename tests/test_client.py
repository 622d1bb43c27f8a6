"""The asyncio client against a real server (geartrain and gearmand, the same tests)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import geartrain
from geartrain import (
    Client,
    ConnectionLost,
    DataUpdate,
    JobException,
    JobFailed,
    JobRequest,
    JobTimeout,
    NoServersAvailable,
    Priority,
    ServerError,
    StatusUpdate,
    WarningUpdate,
    Worker,
    WorkerJob,
)
from geartrain.client import hash_key
from geartrain.connection import Address, parse_address, parse_servers
from geartrain.embedded import EmbeddedServer
from gt_helpers import echo_worker, wait_for, working
from serverproc import ServerProc, free_port

pytestmark = [pytest.mark.timeout(30), pytest.mark.in_process]


# -- addresses (no server needed) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "host", "port"),
    [
        ("gear1:4731", "gear1", 4731),
        ("gear1", "gear1", 4730),
        ("127.0.0.1:7003", "127.0.0.1", 7003),
        ("[::1]:4731", "::1", 4731),
        ("[::1]", "::1", 4730),
        ("::1", "::1", 4730),
        (("gear2", 4999), "gear2", 4999),
        (" gear3:1 ", "gear3", 1),
    ],
)
def test_parse_address(spec: Any, host: str, port: int) -> None:
    assert parse_address(spec) == Address(host, port)


@pytest.mark.parametrize("spec", ["", ":4730", "h:x", "h:70000", "[::1"])
def test_parse_address_rejects(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_address(spec)


def test_parse_servers_lists() -> None:
    assert parse_servers(None) == [Address("localhost", 4730)]
    assert parse_servers("a:1,b, a:1") == [Address("a", 1), Address("b", 4730)]
    assert parse_servers(("h", 5)) == [Address("h", 5)]
    assert parse_servers([("h", 5), "[::1]:6"]) == [Address("h", 5), Address("::1", 6)]
    assert str(Address("::1", 6)) == "[::1]:6"


def test_hash_key_matches_perl_gearman_client() -> None:
    # Gearman::Client: (crc32($uniq) >> 16) & 0x7fff
    assert hash_key(b"") == 0
    assert hash_key(b"abc") == (0x352441C2 >> 16) & 0x7FFF


# -- foreground jobs ------------------------------------------------------------------------------


async def test_string_length(server: ServerProc) -> None:
    async with working(echo_worker(server.address)), Client(server.address) as client:
        assert await client.submit("strlen", "Hello") == b"5"


async def test_binary_payloads_round_trip(server: ServerProc) -> None:
    payloads = [b"", b"\0", b"a\0b\0\0c\0", bytes(range(256)) * 4, b"\0x" * (512 * 1024)]
    async with working(echo_worker(server.address)), Client(server.address) as client:
        for payload in payloads:
            assert await client.submit("echo", payload) == payload


async def test_str_is_sent_as_utf8(server: ServerProc) -> None:
    async with working(echo_worker(server.address)), Client(server.address) as client:
        assert await client.submit("echo", "héllo ✓") == "héllo ✓".encode()
        assert await client.submit("echo", bytearray(b"ba")) == b"ba"
        # Other objects go as JSON, and their results come back through JSON.
        assert await client.submit("echo", 42) == 42


async def test_json_helper(server: ServerProc) -> None:
    worker = Worker(server.address)

    @worker.register("add")
    def add(job: WorkerJob) -> bytes:
        numbers = job.json()["numbers"]
        return geartrain.dumps({"sum": sum(numbers)})

    async with working(worker), Client(server.address) as client:
        result = await client.submit("add", geartrain.dumps({"numbers": [1, 2, 3.5]}))
        assert geartrain.loads(result) == {"sum": 6.5}


async def test_work_fail_raises_job_failed_with_handle(server: ServerProc) -> None:
    worker = Worker(server.address)
    worker.register("fails", lambda job: job.fail())
    async with working(worker), Client(server.address) as client:
        job = await client.submit_job("fails", b"x")
        with pytest.raises(JobFailed) as info:
            await job
        assert type(info.value) is JobFailed
        assert info.value.handle == job.handle and job.handle


async def test_work_exception_raises_job_exception_with_data(server: ServerProc) -> None:
    worker = Worker(server.address)

    @worker.register("raises")
    async def raises(job: WorkerJob) -> None:
        raise ValueError("bad input \0 here")

    async with working(worker), Client(server.address) as client:
        job = await client.submit_job("raises", b"x")
        with pytest.raises(JobException) as info:
            await job
        assert info.value.data == b"ValueError: bad input \0 here"
        assert info.value.handle == job.handle
        assert job.error() is info.value


async def test_exception_without_the_option_is_a_plain_failure(server: ServerProc) -> None:
    # Without OPTION_REQ "exceptions" a server sends WORK_FAIL; gearmand's
    # carries a trailing NUL ("H\0"), which must still match the job.
    worker = Worker(server.address)
    worker.register("raises", lambda job: job.exception(b"boom"))
    async with working(worker), Client(server.address, exceptions=False) as client:
        with pytest.raises(JobFailed) as info:
            await client.submit("raises", b"x")
        assert type(info.value) is JobFailed


async def test_timeout_raises_job_timeout(server: ServerProc) -> None:
    async with Client(server.address) as client:
        started = time.monotonic()
        with pytest.raises(JobTimeout) as info:
            await client.submit("nobody", b"x", timeout=0.3)
        assert 0.25 < time.monotonic() - started < 2
        assert info.value.handle  # the job was created, then given up on
        job = await client.submit_job("nobody", b"y", timeout=0.2)
        with pytest.raises(JobTimeout):
            await job
        assert job.done() and isinstance(job.error(), JobTimeout)


async def test_priorities_order_the_queue(server: ServerProc) -> None:
    order: list[bytes] = []
    worker = Worker(server.address)

    @worker.register("record")
    async def record(job: WorkerJob) -> bytes:
        order.append(job.data)
        return b""

    async with Client(server.address) as client:
        jobs = []
        for priority in (Priority.LOW, Priority.NORMAL, Priority.HIGH):
            jobs.append(await client.submit_job("record", priority.value, priority=priority))
        async with working(worker):
            await asyncio.gather(*jobs)
    assert order == [b"high", b"normal", b"low"]


async def test_unique_key_coalesces(server: ServerProc) -> None:
    runs = 0
    release = asyncio.Event()
    worker = Worker(server.address)

    @worker.register("slow")
    async def slow(job: WorkerJob) -> bytes:
        nonlocal runs
        runs += 1
        await release.wait()
        return b"once"

    async with working(worker), Client(server.address) as client:
        first = await client.submit_job("slow", b"a", unique="same-key")
        second = await client.submit_job("slow", b"b", unique="same-key")
        assert first.handle == second.handle
        await wait_for(lambda: runs == 1)
        release.set()
        assert await first == b"once" and await second == b"once"
    assert runs == 1


async def test_progress_as_async_iterator(server: ServerProc) -> None:
    worker = Worker(server.address)

    @worker.register("progress")
    async def progress(job: WorkerJob) -> bytes:
        for i in range(1, 4):
            job.send_status(i, 3)
        job.send_data(b"chunk\0")
        job.send_warning("careful")
        return b"done"

    async with working(worker), Client(server.address) as client:
        job = await client.submit_job("progress", b"")
        updates = [update async for update in job]
        assert await job == b"done"
    assert updates == [
        StatusUpdate(1, 3),
        StatusUpdate(2, 3),
        StatusUpdate(3, 3),
        DataUpdate(b"chunk\0"),
        WarningUpdate(b"careful"),
    ]
    assert (job.numerator, job.denominator) == (3, 3)


async def test_progress_callbacks(server: ServerProc) -> None:
    worker = Worker(server.address)

    @worker.register("progress")
    def progress(job: WorkerJob) -> bytes:  # runs in a thread
        job.send_status(1, 2)
        job.send_data(b"d")
        job.send_warning(b"w")
        return b"r"

    seen: list[Any] = []
    async with working(worker), Client(server.address) as client:
        job = await client.submit_job(
            "progress",
            on_status=lambda n, d: seen.append(("status", n, d)),
            on_data=lambda data: seen.append(("data", data)),
            on_warning=lambda data: seen.append(("warning", data)),
        )
        assert await job.result() == b"r"
    assert seen == [("status", 1, 2), ("data", b"d"), ("warning", b"w")]


async def test_batch_and_as_completed(server: ServerProc) -> None:
    worker = Worker(server.address, concurrency=8)

    @worker.register("sleep")
    async def sleep(job: WorkerJob) -> bytes:
        await asyncio.sleep(float(job.data))
        return job.data

    async with working(worker), Client(server.address) as client:
        delays = ["0.3", "0.0", "0.15"]
        jobs = await client.submit_batch(("sleep", d) for d in delays)
        assert [job.data for job in jobs] == [d.encode() for d in delays]
        finished = [await job async for job in geartrain.as_completed(jobs)]
        assert finished == [b"0.0", b"0.15", b"0.3"]
        more = await client.submit_batch(
            [JobRequest("sleep", "0", priority=Priority.HIGH), JobRequest("nobody", timeout=0.1)]
        )
        results = await asyncio.gather(*more, return_exceptions=True)
        assert results[0] == b"0" and isinstance(results[1], JobTimeout)


async def test_server_error_is_raised(server: ServerProc) -> None:
    # A unique key over 64 bytes is refused with ERROR ARGUMENT_TOO_LARGE.
    async with Client(server.address) as client:
        with pytest.raises(ServerError) as info:
            await client.submit_background("f", b"x", unique="u" * 65)
        assert info.value.code == "ARGUMENT_TOO_LARGE"
        # The connection is still usable.
        assert await client.submit_background("f", b"x")


# -- background jobs and status -------------------------------------------------------------------


async def test_background_job_and_status_by_handle(server: ServerProc) -> None:
    release = asyncio.Event()
    worker = Worker(server.address)

    @worker.register("bg")
    async def bg(job: WorkerJob) -> bytes:
        job.send_status(2, 5)
        await release.wait()
        return b""

    async with Client(server.address) as client:
        handle = await client.submit_background("bg", b"payload")
        assert isinstance(handle, bytes) and handle
        status = await client.get_status(handle)
        assert (status.known, status.running, status.handle) == (True, False, handle)
        async with working(worker):
            await wait_for(lambda: _running(client, handle))
            # The status may reach the server a moment after the job started.
            await wait_for(lambda: _reported(client, handle.decode()))
            status = await client.get_status(handle)
            assert (status.numerator, status.denominator, status.progress) == (2, 5, 0.4)
            release.set()
            await wait_for(lambda: _gone(client, handle))
        unknown = await client.get_status(b"H:nowhere:1", server=server.address)
        assert not unknown.known and not unknown.running


async def _running(client: Client, handle: bytes) -> bool:
    return (await client.get_status(handle)).running


async def _reported(client: Client, handle: str) -> bool:
    return (await client.get_status(handle)).denominator == 5


async def _gone(client: Client, handle: bytes) -> bool:
    return not (await client.get_status(handle)).known


async def test_status_by_unique_key(server: ServerProc) -> None:
    async with Client(server.address) as client:
        await client.submit_background("nobody", b"x", unique="my-key")
        status = await client.get_status_unique("my-key")
        assert status.known and not status.running
        assert status.unique == b"my-key" and status.clients == 0
        job = await client.submit_job("nobody", b"x", unique="my-key")  # attaches a client
        assert (await client.get_status_unique(b"my-key")).clients == 1
        assert not (await client.get_status_unique("other")).known
        assert job.handle


async def test_background_default_unique_is_a_uuid(server: ServerProc) -> None:
    async with Client(server.address) as client, geartrain.Admin(server.address) as admin:
        await client.submit_background("nobody", b"same")
        await client.submit_background("nobody", b"same")
        uniques = await admin.show_unique_jobs()
    assert len(uniques) == 2 and all(len(u) == 36 and u.count("-") == 4 for u in uniques)


async def test_echo(server: ServerProc) -> None:
    async with Client(server.address) as client:
        assert await client.echo(b"ping\0pong") == b"ping\0pong"


# -- failures of servers --------------------------------------------------------------------------


async def test_no_server_available() -> None:
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    async with Client(dead) as client:
        started = time.monotonic()
        with pytest.raises(NoServersAvailable):
            await client.submit("f", b"x")
        with pytest.raises(NoServersAvailable):
            await client.submit_background("f", b"x")
        with pytest.raises(NoServersAvailable):
            await client.get_status(b"H:x:1")
        assert time.monotonic() - started < 2


async def test_silent_server_does_not_hang_the_client() -> None:
    # A peer that accepts TCP connections but never answers.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        async with Client(address, io_timeout=0.3) as client:
            started = time.monotonic()
            with pytest.raises(NoServersAvailable):
                await client.submit("f", b"x")
            assert time.monotonic() - started < 2


# A call gives each server it tries one io_timeout to answer (docs/client.md).
IO_TIMEOUT = 2.0
WITHIN = 3.5  # one io_timeout and a generous margin; a second wait would take 4 s
# A unique key that hashes to the first of two servers.
FIRST = next(key for i in range(100) if hash_key(key := b"k%d" % i) % 2 == 0)
CALLS: dict[str, Callable[[Client], Awaitable[object]]] = {
    "submit": lambda client: client.submit("echo", b"x", unique=FIRST),
    "submit_background": lambda client: client.submit_background("echo", b"x", unique=FIRST),
    "get_status": lambda client: client.get_status(b"H:nowhere:1"),
    "get_status_unique": lambda client: client.get_status_unique(FIRST),
    "echo": lambda client: client.echo(),
}


@pytest.mark.parametrize("call", CALLS)
async def test_a_stopped_server_costs_a_call_one_io_timeout(
    geartrain: ServerProc, call: str
) -> None:
    async with Client(geartrain.address, io_timeout=IO_TIMEOUT) as client:
        await client.echo()  # the call will wait on this connection first
        geartrain.signal(signal.SIGSTOP)  # its kernel still accepts new connections
        started = time.monotonic()
        with pytest.raises(ConnectionLost):
            await CALLS[call](client)
        assert time.monotonic() - started < WITHIN


@pytest.mark.parametrize("call", [name for name in CALLS if name != "echo"])
async def test_a_stopped_server_fails_over_within_one_io_timeout(
    start_server: Callable[..., ServerProc], call: str
) -> None:
    stopped, alive = start_server(), start_server()
    addresses = [stopped.address, alive.address]
    async with (
        working(echo_worker(alive.address)),
        Client(addresses, io_timeout=IO_TIMEOUT) as client,
    ):
        for address in addresses:
            await client.echo(server=address)
        stopped.signal(signal.SIGSTOP)
        started = time.monotonic()
        result = await CALLS[call](client)  # answered by the other server
        assert time.monotonic() - started < WITHIN
    if call == "submit":
        assert result == b"x"


async def test_concurrent_calls_to_a_silent_server_wait_one_io_timeout() -> None:
    # A peer that accepts connections and never answers.  Calls queued behind
    # one another's connection attempts used to wait one io_timeout each in turn.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        async with Client(address, io_timeout=IO_TIMEOUT) as client:
            started = time.monotonic()
            outcomes = await asyncio.gather(
                *(call(client) for call in CALLS.values()), return_exceptions=True
            )
            assert time.monotonic() - started < WITHIN
        assert all(isinstance(o, ConnectionLost) for o in outcomes), outcomes


async def test_dead_server_is_skipped(server: ServerProc) -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with working(echo_worker(server.address)), Client([dead, server.address]) as client:
        for i in range(6):  # round robin would pick the dead one every other time
            assert await client.submit("strlen", b"x" * i) == str(i).encode()
        assert await client.submit("strlen", b"abc", unique="k1") == b"3"


@pytest.mark.in_process(False)  # restarts the server
async def test_idle_connection_to_a_restarted_server_is_reopened(server: ServerProc) -> None:
    async with Client(server.address) as client:
        assert await client.submit_background("f", b"1")
        server.restart()  # blocking: the client has not seen its connection close yet
        assert await client.submit_background("f", b"2")
        assert await client.echo(b"still here") == b"still here"


async def test_close_fails_unfinished_jobs(server: ServerProc) -> None:
    client = Client(server.address)
    job = await client.submit_job("nobody", b"x")
    await client.close()
    with pytest.raises(geartrain.ConnectionLost):
        await asyncio.wait_for(job.result(), 2)
    # A closed client reconnects on its next call.
    assert await client.submit_background("nobody", b"y")
    await client.close()


@pytest.mark.gearmand_differs
async def test_epoch_job_wakes_a_sleeping_worker(gearman_server: EmbeddedServer) -> None:
    # geartrain (like gearmand 2.0) NOOPs sleeping workers when an epoch job
    # falls due; gearmand 1.1 waits for the next grab (the worker's idle poll).
    ran = asyncio.Event()
    worker = Worker(gearman_server.address, idle_timeout=60)

    @worker.register("later")
    async def later(job: WorkerJob) -> None:
        ran.set()

    async with working(worker), Client(gearman_server.address) as client:
        await asyncio.sleep(0.2)  # the worker is asleep
        await client.submit_background("later", b"x", when=time.time() + 1)
        await asyncio.wait_for(ran.wait(), 4)


async def test_connect_timeout() -> None:
    # A listener whose accept queue is full drops further SYNs: connect() hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        try:
            await asyncio.sleep(0.1)
            async with Client(f"127.0.0.1:{port}", connect_timeout=0.5) as client:
                started = time.monotonic()
                with pytest.raises(NoServersAvailable) as info:
                    await client.submit("f", b"x")
                assert time.monotonic() - started < 1.5
                assert "timed out" in str(info.value)
                # Concurrent calls do not each wait for a connect of their own.
                started = time.monotonic()
                outcomes = await asyncio.gather(
                    *(call(client) for call in CALLS.values()), return_exceptions=True
                )
                assert time.monotonic() - started < 1.5
                assert all(isinstance(o, ConnectionLost) for o in outcomes), outcomes
        finally:
            for filler in fillers:
                filler.close()


def test_works_on_uvloop(server: ServerProc) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def round_trip() -> tuple[bytes, list[geartrain.FunctionStatus]]:
        worker = Worker(server.address)
        worker.register("rev", lambda job: job.data[::-1])
        async with (
            working(worker),
            Client(server.address) as client,
            geartrain.Admin(server.address) as admin,
        ):
            return await client.submit("rev", b"ab\0c"), await admin.status()

    result, status = uvloop.run(round_trip())
    assert result == b"c\0ba"
    assert status[0].workers == 1
