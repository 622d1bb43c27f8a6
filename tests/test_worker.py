"""The asyncio worker against a real server (geartrain and gearmand, the same tests)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from geartrain import Admin, Client, JobException, JobFailed, Worker, WorkerJob, sync
from geartrain.embedded import EmbeddedServer
from gt_helpers import queued, registered, wait_for, working
from serverproc import ServerProc, free_port

pytestmark = [pytest.mark.timeout(30), pytest.mark.in_process]


async def test_plain_functions_run_in_threads_async_ones_on_the_loop(server: ServerProc) -> None:
    loop_thread = threading.current_thread()
    seen: dict[str, threading.Thread] = {}
    worker = Worker(server.address)

    @worker.register("plain")
    def plain(job: WorkerJob) -> str:
        seen["plain"] = threading.current_thread()
        time.sleep(0.05)  # blocking is fine here
        return job.text.upper()

    @worker.register("coro")
    async def coro(job: WorkerJob) -> bytes:
        seen["coro"] = threading.current_thread()
        return job.data[::-1]

    async with working(worker), Client(server.address) as client:
        assert await client.submit("plain", "abc") == b"ABC"
        assert await client.submit("coro", "abc") == b"cba"
    assert seen["coro"] is loop_thread
    assert seen["plain"] is not loop_thread


async def test_result_types(server: ServerProc) -> None:
    worker = Worker(server.address)
    worker.register("none", lambda job: None)
    worker.register("number", lambda job: 42)  # objects go as JSON
    worker.register("bad", lambda job: object())
    async with working(worker), Client(server.address) as client:
        assert await client.submit("none") == b""
        assert await client.submit("number") == b"42"
        with pytest.raises(JobException) as info:
            await client.submit("bad")
        assert info.value.data.startswith(b"TypeError: ")


async def test_concurrency_limits_jobs_in_hand(server: ServerProc) -> None:
    active = 0
    peak = 0
    worker = Worker(server.address, concurrency=3)

    @worker.register("busy")
    async def busy(job: WorkerJob) -> bytes:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.1)
        active -= 1
        return b""

    async with working(worker), Client(server.address) as client:
        started = time.monotonic()
        await asyncio.gather(*[client.submit("busy") for _ in range(9)])
        elapsed = time.monotonic() - started
    assert peak == 3
    assert 0.25 < elapsed < 1.5  # three rounds of three, not nine in a row


async def test_concurrency_is_shared_across_servers(start_server: object) -> None:
    servers = [start_server("gearmand"), start_server("gearmand")]  # type: ignore[operator]
    addresses = [s.address for s in servers]
    active = 0
    peak = 0
    worker = Worker(addresses, concurrency=2)

    @worker.register("busy")
    async def busy(job: WorkerJob) -> bytes:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return b""

    async with working(worker):
        clients = [Client(address) for address in addresses]
        await asyncio.gather(*[c.submit("busy") for c in clients for _ in range(6)])
        for client in clients:
            await client.close()
    assert peak == 2


async def test_function_timeout_fails_the_job(server: ServerProc) -> None:
    cancelled = asyncio.Event()
    worker = Worker(server.address, concurrency=2)

    @worker.register("slow", timeout=0.3)
    async def slow(job: WorkerJob) -> bytes:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b"late"

    @worker.register("slow_plain", timeout=0.3)
    def slow_plain(job: WorkerJob) -> bytes:
        time.sleep(0.6)
        return b"late"

    async with working(worker), Client(server.address) as client:
        for name in ("slow", "slow_plain"):
            started = time.monotonic()
            with pytest.raises(JobException) as info:
                await client.submit(name, b"x")
            # The reason travels as WORK_EXCEPTION text.
            assert str(info.value).startswith(f"TimeoutError: job {name!r} ran past its 0.3s")
            assert time.monotonic() - started < 1.0
        assert cancelled.is_set()
        # The worker is free again afterwards.
        worker.register("quick", lambda job: b"ok")
        await wait_for(lambda: registered(server.address, "quick"))
        assert await client.submit("quick") == b"ok"


async def test_job_methods_from_a_thread(server: ServerProc) -> None:
    worker = Worker(server.address)

    @worker.register("chatty")
    def chatty(job: WorkerJob) -> None:
        job.send_status(1, 4)
        job.send_data(b"a\0b")
        job.send_warning("w")
        job.complete(b"explicit")
        job.fail()  # ignored: the job already ended

    @worker.register("failing")
    def failing(job: WorkerJob) -> bytes:
        job.fail()
        return b"ignored"

    @worker.register("excepting")
    async def excepting(job: WorkerJob) -> None:
        job.exception(b"custom payload")

    async with working(worker), Client(server.address) as client:
        job = await client.submit_job("chatty")
        updates = [u async for u in job]
        assert await job == b"explicit"
        assert len(updates) == 3
        with pytest.raises(JobFailed):
            await client.submit("failing")
        with pytest.raises(JobException) as info:
            await client.submit("excepting")
        assert info.value.data == b"custom payload"


async def test_job_attributes(server: ServerProc) -> None:
    seen: list[WorkerJob] = []
    worker = Worker(server.address)
    worker.register("look", lambda job: seen.append(job))
    async with working(worker), Client(server.address) as client:
        handle = await client.submit_background("look", b"data", unique="uniq-1")
        await wait_for(lambda: bool(seen))
    job = seen[0]
    assert (job.handle, job.function, job.unique, job.data) == (handle, "look", b"uniq-1", b"data")


@pytest.mark.parametrize("grab_all", [True, False])
async def test_grab_modes(server: ServerProc, grab_all: bool) -> None:
    worker = Worker(server.address, grab_all=grab_all)
    worker.register("u", lambda job: job.unique)
    async with working(worker), Client(server.address) as client:
        assert await client.submit("u", unique="k") == b"k"


async def test_graceful_stop_finishes_jobs_in_hand(server: ServerProc) -> None:
    started = asyncio.Event()
    worker = Worker(server.address)

    @worker.register("slow")
    async def slow(job: WorkerJob) -> bytes:
        started.set()
        await asyncio.sleep(0.3)
        return b"finished"

    async with Client(server.address) as client:
        await worker.start()
        first = await client.submit_job("slow", b"1")
        await started.wait()
        second = await client.submit_job("slow", b"2")
        worker.stop()  # graceful
        assert await first == b"finished"
        await asyncio.wait_for(worker.wait(), 5)
        assert not worker.running
        assert not second.done()  # never taken: still queued on the server
        assert await queued(server.address, "slow") == 1


async def test_hard_stop_cancels_async_jobs(server: ServerProc) -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()
    worker = Worker(server.address)

    @worker.register("forever")
    async def forever(job: WorkerJob) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with Client(server.address) as client:
        await worker.start()
        await client.submit_job("forever")
        await started.wait()
        worker.stop(graceful=False)
        await asyncio.wait_for(worker.wait(), 5)
    assert cancelled.is_set()


async def test_max_jobs(server: ServerProc) -> None:
    worker = Worker(server.address, max_jobs=2)
    worker.register("one", lambda job: b"")
    async with Client(server.address) as client:
        jobs = [await client.submit_job("one") for _ in range(3)]
        await asyncio.wait_for(worker.run(handle_signals=False), 10)
        assert worker.jobs_done == 2
        await asyncio.wait_for(asyncio.gather(*jobs[:2]), 5)
        await asyncio.sleep(0.1)
        assert not jobs[2].done()


async def test_client_id_register_and_unregister(server: ServerProc) -> None:
    worker = Worker(server.address, client_id="worker-7")
    worker.register("a", lambda job: b"a")
    async with working(worker), Admin(server.address) as admin:
        worker.register("b", lambda job: b"b")
        await wait_for(lambda: registered(server.address, "b"))
        mine = [w for w in await admin.workers() if w.client_id == "worker-7"]
        assert len(mine) == 1 and set(mine[0].functions) == {"a", "b"}
        worker.unregister("a")
        await wait_for(lambda: _functions_of(admin, "worker-7", {"b"}))
        assert worker.functions == ["b"]


@pytest.mark.gearmand_differs
async def test_function_registered_while_asleep_gets_its_queued_jobs(
    gearman_server: EmbeddedServer,
) -> None:
    # The server wakes the sleeping connection (gearmand leaves it asleep until
    # idle_timeout or the next submission: see docs/compatibility.md).
    worker = Worker(gearman_server.address, idle_timeout=60)
    worker.register("a", lambda job: b"a")
    async with working(worker), Client(gearman_server.address) as client:
        job = await client.submit_job("b")
        await asyncio.sleep(0.3)  # the worker has found nothing and sleeps
        worker.register("b", lambda job: b"b")
        assert await asyncio.wait_for(job.result(), 10) == b"b"


async def _functions_of(admin: Admin, client_id: str, expected: set[str]) -> bool:
    return any(
        w.client_id == client_id and set(w.functions) == expected for w in await admin.workers()
    )


async def test_worker_waits_for_a_server_and_reconnects(start_server: object) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    worker = Worker(address, max_backoff=0.2)
    worker.register("echo", lambda job: job.data)
    await worker.start()
    try:
        await asyncio.sleep(0.3)  # nothing listening yet: it keeps trying
        assert worker.connected == []
        srv = start_server("gearmand", port=port)  # type: ignore[operator]
        await wait_for(lambda: registered(address, "echo"))
        async with Client(address) as client:
            assert await client.submit("echo", b"1") == b"1"
        srv.kill()
        await wait_for(lambda: worker.connected == [])
        start_server("gearmand", port=port)  # type: ignore[operator]
        await wait_for(lambda: registered(address, "echo"))
        async with Client(address) as client:
            assert await client.submit("echo", b"2") == b"2"
    finally:
        worker.stop(graceful=False)
        await worker.wait()


async def test_silent_server_is_dropped_and_reconnected() -> None:
    # A peer that accepts connections but never answers a grab: io_timeout
    # ends the wait and the worker reconnects, instead of hanging.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(5)
        worker = Worker(f"127.0.0.1:{listener.getsockname()[1]}", io_timeout=0.2, max_backoff=0.1)
        worker.register("f", lambda job: b"")
        await worker.start()
        try:
            first, _ = await asyncio.to_thread(listener.accept)
            second, _ = await asyncio.to_thread(listener.accept)  # it came back
            first.close()
            second.close()
        finally:
            worker.stop(graceful=False)
            await asyncio.wait_for(worker.wait(), 2)


WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from geartrain import Worker

    async def main():
        worker = Worker(sys.argv[1])

        @worker.register("slow")
        async def slow(job):
            print("started", flush=True)
            await asyncio.sleep(0.5)
            return b"finished"

        await worker.run()
        print("stopped", worker.jobs_done, flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_gracefully(server: ServerProc, tmp_path: Path, sig: int) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), server.address], stdout=subprocess.PIPE, text=True
    )
    try:
        await wait_for(lambda: registered(server.address, "slow"))
        async with Client(server.address) as client:
            first = await client.submit_job("slow", b"1")
            assert proc.stdout is not None
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line == "started\n"
            second = await client.submit_job("slow", b"2")
            os.kill(proc.pid, sig)
            assert await first == b"finished"
            out = await asyncio.to_thread(proc.communicate, timeout=10)
            assert proc.returncode == 0
            assert out[0] == "stopped 1\n"
            assert not second.done()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_register_checks_its_arguments() -> None:
    worker = Worker("h")
    with pytest.raises(TypeError, match="must be callable"):
        worker.register("x", 123)  # type: ignore[call-overload]
    with pytest.raises(ValueError):
        worker.register("", lambda job: b"")
    with pytest.raises(ValueError):
        worker.register("x", lambda job: b"", timeout=0)
    assert worker.functions == []


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Worker("h", concurrency=0)


async def test_start_twice_is_an_error(server: ServerProc) -> None:
    worker = Worker(server.address)
    await worker.start()
    try:
        with pytest.raises(RuntimeError):
            await worker.start()
    finally:
        worker.stop()
        await worker.wait()


async def test_function_exception_is_logged_once_with_traceback(
    server: ServerProc, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(server.address)

    @worker.register("greet")
    def greet(job: WorkerJob) -> str:
        return "Hello, " + job.data  # type: ignore[operator]

    async with working(worker), Client(server.address) as client:
        with pytest.raises(JobException) as info:
            await client.submit("greet", b"world")
    assert str(info.value).startswith("TypeError: can only concatenate str")
    logged = [r for r in caplog.records if r.name.startswith("geartrain") and r.exc_info]
    assert len(logged) == 1 and "greet" in logged[0].getMessage()


def test_a_bare_decorator_registers_under_the_functions_name() -> None:
    worker = Worker("h")

    @worker.register
    def resize(job: WorkerJob) -> bytes:
        return b""

    @worker.register(timeout=5)
    async def crop(job: WorkerJob) -> bytes:
        return b""

    assert worker.functions == ["resize", "crop"] and resize(None) == b""  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no name of its own"):
        worker.register(lambda job: b"")
    blocking = sync.Worker("h")

    @blocking.register
    def rotate(job: WorkerJob) -> bytes:
        return b""

    assert blocking.functions == ["rotate"]


async def test_each_job_is_one_info_line_with_its_handle_as_text(
    server: ServerProc, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(server.address)

    @worker.register
    async def ok(job: WorkerJob) -> bytes:
        await asyncio.sleep(0.1)
        return b"fine"

    @worker.register
    async def refuse(job: WorkerJob) -> None:
        job.fail()

    @worker.register
    async def bad(job: WorkerJob) -> None:
        raise ValueError("no such size")

    caplog.set_level(logging.INFO, logger="geartrain.worker")
    async with working(worker), Client(server.address) as client:
        handle = (await client.submit_job("ok")).handle
        assert handle is not None
        await client.submit("ok")
        with pytest.raises(JobFailed):
            await client.submit("refuse")
        with pytest.raises(JobException):
            await client.submit("bad")
    lines = [
        r.getMessage() for r in caplog.records if r.name == "geartrain.worker" and "job " in r.msg
    ]
    assert not any("b'" in line for line in lines)
    ran = [line for line in lines if line.startswith(f"job {handle.decode()} (ok) completed in ")]
    assert len(ran) == 1 and ", started " in ran[0]
    assert float(ran[0].split(" in ")[1].split("s,")[0]) >= 0.1
    assert sum(" (refuse) failed in " in line for line in lines) == 1
    assert sum(" (bad) raised ValueError: no such size in " in line for line in lines) == 1
