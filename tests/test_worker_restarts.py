"""The worker across a server restart, and its stop grace period (both servers)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from geartrain import Client, Worker, WorkerJob
from geartrain.connection import Backoff
from gt_helpers import registered, wait_for, working
from serverproc import ServerProc

pytestmark = pytest.mark.timeout(60)


def test_backoff_grows_only_with_the_outage() -> None:
    backoff = Backoff(0.1, 30.0)
    # However many attempts failed, a fresh outage is retried within a
    # quarter of its length (and at least every 0.1 s).
    delays = [backoff.next() for _ in range(20)]
    assert all(0.05 <= d <= 0.1 for d in delays)
    backoff.reset()
    assert backoff.next() <= 0.1


@pytest.mark.slow
async def test_worker_is_back_promptly_after_a_restart(server: ServerProc) -> None:
    worker = Worker(server.address)
    worker.register("back", lambda job: b"here")
    async with working(worker):
        server.kill()
        await wait_for(lambda: worker.connected == [])
        await asyncio.sleep(6)  # the server stays down a while: the worker backs off
        server.start()
        restarted = time.monotonic()
        await wait_for(lambda: registered(server.address, "back"), timeout=20)
        assert time.monotonic() - restarted < 3.0
        async with Client(server.address) as client:
            assert await client.submit("back", timeout=10) == b"here"


WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from geartrain import Worker

    async def main():
        worker = Worker(sys.argv[1], grace_period=0.5)

        @worker.register("stuck")
        async def stuck(job):
            print("started", flush=True)
            await asyncio.sleep(60)
            return b"never"

        await worker.run()
        print("stopped", flush=True)

    asyncio.run(main())
    """
)


async def test_grace_period_releases_jobs_in_hand(server: ServerProc, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), server.address], stdout=subprocess.PIPE, text=True
    )
    try:
        await wait_for(lambda: registered(server.address, "stuck"), timeout=15)
        async with Client(server.address) as client:
            job = await client.submit_job("stuck", b"1")
            assert proc.stdout is not None
            assert await asyncio.to_thread(proc.stdout.readline) == "started\n"
            proc.send_signal(signal.SIGTERM)
            out, _ = await asyncio.to_thread(proc.communicate, timeout=15)
            assert (proc.returncode, out) == (0, "stopped\n")
            # The server got the job back and hands it to the next worker.
            other = Worker(server.address)

            @other.register("stuck")
            async def finish(job: WorkerJob) -> bytes:
                return b"finished elsewhere"

            async with working(other):
                assert await asyncio.wait_for(job.result(), 15) == b"finished elsewhere"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
