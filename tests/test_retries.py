"""Retries a waiting client and a worker can see, through the libraries against a
real server: geartrain and gearmand, the same tests where both apply.  gearmand has
no retries extension: there the client gets the first failure, and the worker
sees no attempt number."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from geartrain import Admin, Client, JobException, JobFailed, Retry, Worker, WorkerJob, sync
from geartrain.embedded import EmbeddedServer
from gt_helpers import registered, wait_for, working
from serverproc import InProcess, ServerProc, start_geartrain

pytestmark = [pytest.mark.timeout(60), pytest.mark.in_process]

FAST = Retry(attempts=3, backoff=0.01, jitter=0.0)
"""Three attempts in all, 10 ms and then 20 ms apart."""

Seen = list[tuple[int | None, int | None, int | None]]


def flaky_worker(address: str, fails: int = 2, **register: object) -> tuple[Worker, Seen]:
    """A worker whose function "flaky" raises on its first ``fails`` calls, then
    answers "ok after N"; ``seen`` gets each call's (attempt, attempts, attempts_left)."""
    worker = Worker(address)
    seen: Seen = []

    def flaky(job: WorkerJob) -> str:
        seen.append((job.attempt, job.attempts, job.attempts_left))
        if len(seen) <= fails:
            raise RuntimeError(f"call {len(seen)} failed")
        return f"ok after {len(seen)}"

    worker.register("flaky", flaky, **register)  # type: ignore[call-overload]
    return worker, seen


async def test_a_worker_declared_policy_gives_the_client_ok_after_3(
    server: ServerProc | InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    worker, seen = flaky_worker(str(server.address), retry=FAST)
    with caplog.at_level(logging.INFO, "geartrain.worker"):
        async with working(worker), Client(server.address) as client:
            if server.kind == "gearmand":
                with pytest.raises(JobException, match="call 1 failed"):
                    await client.submit("flaky", b"x")
                assert seen == [(None, None, None)]
                assert "does not take retry policies from workers" in caplog.text
                return
            assert await client.submit("flaky", b"x") == b"ok after 3"
    assert seen == [(1, 3, 2), (2, 3, 1), (3, 3, 0)]
    # The worker's line per job says which attempt it was.
    assert "completed in" in caplog.text and ", attempt 3 of 3" in caplog.text


async def test_a_submission_policy_gives_the_client_ok_after_3(
    server: ServerProc | InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    worker, seen = flaky_worker(str(server.address))
    async with working(worker), Client(server.address) as client:
        if server.kind == "gearmand":
            with (
                caplog.at_level(logging.WARNING, "geartrain.client"),
                pytest.raises(JobException, match="call 1 failed"),
            ):
                await client.submit("flaky", b"x", retry=FAST)
            assert "does not take retry policies" in caplog.text
            return
        assert await client.submit("flaky", b"x", retry=FAST) == b"ok after 3"
        # The policy was that submission's only: the next one fails at once.
        seen.clear()
        with pytest.raises(JobException, match="call 1 failed"):
            await client.submit("flaky", b"y")
    assert seen == [(1, 1, 0)]


async def test_a_function_registered_while_the_worker_runs_declares_its_policy(
    gearman_server: EmbeddedServer,
) -> None:
    worker = Worker(gearman_server.address)
    calls: list[int | None] = []

    def late(job: WorkerJob) -> str:
        calls.append(job.attempt)
        if len(calls) < 3:
            raise RuntimeError("not yet")
        return "ok after 3"

    async with worker, Client(gearman_server.address) as client:
        await wait_for(lambda: bool(worker.connected))
        worker.register("late", late, retry=FAST)
        await wait_for(lambda: registered(gearman_server.address, "late"))
        assert await client.submit("late", b"x") == b"ok after 3"
    assert calls == [1, 2, 3]


async def test_the_last_failure_reaches_the_client_when_attempts_run_out(
    gearman_server: EmbeddedServer,
) -> None:
    worker, seen = flaky_worker(gearman_server.address, fails=5, retry=FAST)
    async with working(worker), Client(gearman_server.address) as client:
        with pytest.raises(JobException, match="call 3 failed"):
            await client.submit("flaky", b"x")
    assert [attempt for attempt, _, _ in seen] == [1, 2, 3]


async def test_a_submission_policy_wins_over_the_workers(gearman_server: EmbeddedServer) -> None:
    worker, seen = flaky_worker(
        gearman_server.address, fails=3, retry=Retry(attempts=2, backoff=0.01)
    )
    async with working(worker), Client(gearman_server.address) as client:
        more = Retry(attempts=4, backoff=0.01, jitter=0)
        assert await client.submit("flaky", b"x", retry=more) == b"ok after 4"
    assert [(attempt, attempts) for attempt, attempts, _ in seen] == [(n, 4) for n in (1, 2, 3, 4)]


async def test_coalesced_clients_all_get_the_final_result(gearman_server: EmbeddedServer) -> None:
    worker = Worker(gearman_server.address)
    calls: list[int] = []
    release = asyncio.Event()

    @worker.register("slow_flaky", retry=FAST)
    async def slow_flaky(job: WorkerJob) -> str:
        calls.append(job.attempt or 0)
        if len(calls) == 1:
            await release.wait()  # the second client joins while attempt 1 runs
            raise RuntimeError("first attempt")
        return f"ok after {len(calls)}"

    async with (
        working(worker),
        Client(gearman_server.address) as c1,
        Client(gearman_server.address) as c2,
    ):
        first = asyncio.ensure_future(c1.submit("slow_flaky", b"x", unique="same"))
        await wait_for(lambda: bool(calls))
        second = asyncio.ensure_future(c2.submit("slow_flaky", b"x", unique="same"))

        async def both_wait() -> bool:
            return (await c1.get_status_unique("same")).clients == 2

        await wait_for(both_wait)
        release.set()
        assert await first == await second == b"ok after 2"
    assert calls == [1, 2]


async def test_a_background_job_is_retried_by_its_submissions_policy(
    gearman_server: EmbeddedServer,
) -> None:
    worker, seen = flaky_worker(gearman_server.address)
    async with working(worker), Client(gearman_server.address) as client:
        await client.submit_background("flaky", b"x", retry=FAST)
        await wait_for(lambda: len(seen) == 3)
    assert seen == [(1, 3, 2), (2, 3, 1), (3, 3, 0)]


async def running(address: str, function: str, count: int) -> bool:
    """True once ``function`` has ``count`` jobs running."""
    async with Admin(address) as admin:
        return any(s.function == function and s.running == count for s in await admin.status())


@pytest.mark.in_process(False)
async def test_a_restart_on_sqlite_keeps_a_background_submissions_policy(tmp_path: Path) -> None:
    """The policy travels with the stored job: after a restart the worker is still
    told attempts of 4 (the function has no policy of its own), and the attempt
    that failed before the restart counts."""
    queue = ["-q", "libsqlite3", "--libsqlite3-db", str(tmp_path / "queue.sqlite3")]
    server = start_geartrain(queue)
    try:
        worker, seen = flaky_worker(server.address, fails=1)
        async with working(worker), Client(server.address) as client:
            retry = Retry(attempts=4, backoff=2, jitter=0)  # the retry waits out the restart
            await client.submit_background("flaky", b"x", retry=retry)
            await wait_for(lambda: len(seen) == 1)
            await wait_for(lambda: running(server.address, "flaky", 0))
        server.stop()
        server = start_geartrain(queue, server.port)
        worker, seen = flaky_worker(server.address, fails=2)
        async with working(worker):
            await wait_for(lambda: len(seen) == 3, timeout=60)
    finally:
        server.cleanup()
    assert seen == [(2, 4, 2), (3, 4, 1), (4, 4, 0)]


def test_the_sync_facades_take_retry_policies(gearman_server: EmbeddedServer) -> None:
    seen: list[int | None] = []
    with (
        sync.Worker(gearman_server.address) as worker,
        sync.Client(gearman_server.address) as client,
    ):

        @worker.register("sync_flaky", retry=FAST)
        def sync_flaky(job: WorkerJob) -> str:
            seen.append(job.attempt)
            if len(seen) < 2:
                raise RuntimeError("once")
            return "ok"

        assert client.submit("sync_flaky", b"x") == b"ok"
        assert client.submit("sync_flaky", b"x", retry=Retry(attempts=1)) == b"ok"
        worker.stop(graceful=False)
    assert seen == [1, 2, 1]


def test_a_retry_that_is_not_a_policy_is_refused_at_once() -> None:
    worker = Worker("127.0.0.1:1")
    with pytest.raises(TypeError, match="geartrain.Retry"):
        worker.register("f", lambda job: None, retry=3)  # type: ignore[call-overload]


# -- a PHP worker under a settings-file policy -------------------------------------------

PHP = shutil.which("php")
FLAKY_PHP = Path(__file__).parent / "php_peers" / "flaky_worker.php"
PHP_CLIENT = Path(__file__).parent / "php_peers" / "client.php"
SETTINGS = """
[functions."php_flaky"]
attempts = 3
retry_on = ["fail", "exception"]
backoff_base = 0.01
jitter = 0.0
"""


@pytest.fixture
def php_flaky_server(
    request: pytest.FixtureRequest, tmp_path: Path, start_server: object
) -> Iterator[ServerProc]:
    settings = tmp_path / "settings.toml"
    settings.write_text(SETTINGS)
    kind = request.param
    args = ["--settings", str(settings)] if kind == "geartrain" else []
    server: ServerProc = start_server(kind, args)  # type: ignore[operator]
    worker = subprocess.Popen(
        [str(PHP), str(FLAKY_PHP), server.host, str(server.port)], stdout=subprocess.DEVNULL
    )
    try:
        yield server
    finally:
        worker.kill()
        worker.wait()


def php_client(server: ServerProc, workload: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(PHP), str(PHP_CLIENT), server.host, str(server.port), "php_flaky"],
        input=workload,
        capture_output=True,
        timeout=30,
    )


@pytest.mark.in_process(False)
@pytest.mark.parametrize("php_flaky_server", ["geartrain", "gearmand"], indirect=True)
async def test_a_php_worker_failing_twice_gives_php_and_python_clients_ok_after_3(
    php_flaky_server: ServerProc,
) -> None:
    server = php_flaky_server
    done = php_client(server, b"for php")
    async with Client(server.address) as client:
        if server.kind == "gearmand":
            assert done.returncode == 1, done.stderr  # WORK_FAIL at the first failure
            with pytest.raises(JobFailed):  # WORK_FAIL, likewise
                await client.submit("php_flaky", b"for python")
            return
        assert (done.returncode, done.stdout) == (0, b"ok after 3"), done.stderr
        assert await client.submit("php_flaky", b"for python") == b"ok after 3"
