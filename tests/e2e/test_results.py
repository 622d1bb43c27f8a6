"""Kept results of background jobs, end to end: a `geartrain server` subprocess on
SQLite and on Redis with a settings file, PHP (libgearman) workers and clients, the Python
client; a restart keeps the results; a gearmand-style exchange sees nothing new."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from geartrain import Client, JobException, JobFailed, JobTimeout, NoResult, ServerError
from geartrain.protocol import HEADER, RES, PacketType
from geartrain.sync import Admin as SyncAdmin
from geartrain.sync import Client as SyncClient
from geartrain.sync import Worker as SyncWorker
from gt_helpers import wait_for
from serverproc import ServerProc, gearmand_available, start_gearmand, start_geartrain
from wire import Wire, admin_command

T = PacketType
PHP = shutil.which("php")
PEERS = Path(__file__).parent.parent / "php_peers"
PERL = Path(__file__).parent.parent / "interop" / "perl"

pytestmark = [pytest.mark.timeout(120)]

SETTINGS = """
[functions."digest"]
keep_results = "1h"

[functions."fail"]
keep_results = 600
"""

BINARY = b"\0\xff\r\n result \0" + bytes(range(256))


@pytest.fixture
def start(
    tmp_path: Path, durable_queue: list[str], restartable: Callable[[list[str]], ServerProc]
) -> Callable[[], ServerProc]:
    settings = tmp_path / "settings.toml"
    settings.write_text(SETTINGS)
    return lambda: restartable([*durable_queue, "--settings", str(settings)])


@pytest.fixture
def php_worker() -> Iterator[Callable[[ServerProc], None]]:
    procs: list[subprocess.Popen[bytes]] = []

    def run(server: ServerProc) -> None:
        assert PHP is not None, "php with the gearman extension"
        worker = PEERS / "worker.php"
        procs.append(subprocess.Popen([PHP, str(worker), server.host, str(server.port), "1000"]))

    yield run
    for proc in procs:
        proc.kill()
        proc.wait()


def php_background(server: ServerProc, function: str, payload: bytes) -> bytes:
    """A php-gearman client's doBackground(); its handle."""
    assert PHP is not None
    done = subprocess.run(
        [PHP, str(PEERS / "client.php"), server.host, str(server.port), function, "background"],
        input=payload,
        capture_output=True,
        timeout=30,
        check=True,
    )
    return done.stdout


async def test_a_php_workers_result_is_fetched_by_a_python_client_after_a_restart(
    start: Callable[[], ServerProc], php_worker: Callable[[ServerProc], None]
) -> None:
    server = start()
    async with Client(server.address) as client:
        # Asked per submission, while no worker runs: the job waits, and so does the result.
        job = await client.submit_background("reverse", BINARY, keep_result="1h")
        assert isinstance(job, bytes) and job.startswith(b"H:")
        assert pickle.loads(pickle.dumps(job)) == job  # as the plain handle
        waiting = asyncio.ensure_future(job.result(timeout=60))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        php_worker(server)
        assert await waiting == BINARY[::-1]
        # Kept by the function's policy, for a PHP client's job.
        handle = php_background(server, "digest", BINARY)
        assert await client.result(handle, timeout=60) == b"%d %s" % (
            len(BINARY),
            hashlib.sha256(BINARY).hexdigest().encode(),
        )
        failed = php_background(server, "fail", b"x")
        with pytest.raises(JobFailed):
            await client.result(failed, timeout=60)
        plain = php_background(server, "reverse", b"abc")
        await wait_for(lambda: _ended(server, plain))
        with pytest.raises(NoResult):
            await client.result(plain, timeout=0)
    server = start()  # the results survive a restart (the store)
    async with Client(server.address) as client:
        assert await client.result(job, timeout=0) == BINARY[::-1]
        assert (await client.result_status(handle)).status == "complete"  # type: ignore[union-attr]
        with pytest.raises(JobFailed):
            await client.result(failed, timeout=0)
    answer = admin_command(server.port, "result " + job.decode())
    assert answer == b"OK complete " + base64.b64encode(BINARY[::-1]) + b"\n"
    cli = [sys.executable, "-m", "geartrain", "admin", "-p", str(server.port), "--result"]
    out = subprocess.run([*cli, job.decode()], capture_output=True, check=True)
    assert out.stdout == b"complete " + base64.b64encode(BINARY[::-1]) + b"\n"
    out = subprocess.run([*cli, failed.decode()], capture_output=True, check=True)
    assert out.stdout == b"fail\n"
    out = subprocess.run([*cli, "H:nosuch:1", "--strict"], capture_output=True)
    assert (out.returncode, out.stderr) == (1, b"Error: UNKNOWN_JOB\r\n")


async def test_a_queued_jobs_opt_in_survives_a_restart(
    start: Callable[[], ServerProc], php_worker: Callable[[ServerProc], None]
) -> None:
    server = start()
    async with Client(server.address) as client:
        job = await client.submit_background("reverse", b"kept across", keep_result=600)
        status = await client.result_status(job)
        assert status is not None and (status.status, status.ended) == ("queued", False)
        with pytest.raises(JobTimeout):
            await client.result(job, timeout=0.2)  # it has not run; it stays queued
    server = start()
    php_worker(server)
    async with Client(server.address) as client:
        assert await client.result(job, timeout=60) == b"kept across"[::-1]


def test_the_sync_client_and_a_python_exception(start: Callable[[], ServerProc]) -> None:
    server = start()
    worker = SyncWorker(server.address)

    @worker.register("raises")
    def raises(job: object) -> bytes:
        raise ValueError("bad input")

    with SyncClient(server.address) as client, worker:
        job = client.submit_background("raises", b"x", keep_result="5m")
        with pytest.raises(JobException, match="bad input"):
            job.result(timeout=60)
        assert client.result_status(job).status == "exception"  # type: ignore[union-attr]
    with SyncAdmin(server.address) as admin:
        found = admin.result(job)
        assert found is not None and found.status == "exception"
        assert found.data.startswith(b"ValueError") and admin.result(b"H:nosuch:1") is None


def test_without_opt_in_the_wire_is_gearmands(start: Callable[[], ServerProc]) -> None:
    """A plain background job: the client's bytes are JOB_CREATED alone, the job's end
    sends nothing, and no result is kept."""
    server = start()
    with Wire(server.port) as client, Wire(server.port) as worker:
        client.send(T.SUBMIT_JOB_BG, b"reverse", b"u-plain", b"data")
        raw = client.sock.recv(4096)
        handle = raw[HEADER.size :]
        assert raw == HEADER.pack(RES, T.JOB_CREATED, len(handle)) + handle
        worker.send(T.CAN_DO, b"reverse")
        assigned = worker.grab()
        assert assigned is not None and assigned[0] == handle
        worker.send(T.WORK_COMPLETE, handle, b"atad")
        worker.sync()
        client.expect_nothing()
        assert client.admin(b"result " + handle) == b"ERR UNKNOWN_JOB\r\n"


@pytest.mark.skipif(not gearmand_available(), reason="Debian's gearmand")
async def test_gearmand_refuses_the_option_and_the_client_says_so() -> None:
    gearmand = start_gearmand()
    try:
        with Wire(gearmand.port) as wire:
            wire.send(T.OPTION_REQ, b"keep_result=60")
            assert wire.expect(T.ERROR)[0] == b"UNKNOWN_OPTION"
        async with Client(gearmand.address) as client:
            with pytest.raises(ServerError, match="does not keep results"):
                await client.submit_background("f", b"x", keep_result=60)
            handle = await client.submit_background("f", b"x")  # without: as ever
            with pytest.raises(ServerError):
                await client.result(handle, timeout=0)  # no such admin command
    finally:
        gearmand.cleanup()


async def _ended(server: ServerProc, handle: bytes) -> bool:
    return admin_command(server.port, "result " + handle.decode()) == b"ERR UNKNOWN_JOB\r\n"


def test_a_perl_clients_job_is_kept_by_its_functions_policy(
    tmp_path: Path, php_worker: Callable[[ServerProc], None]
) -> None:
    """Gearman::Client (Perl) submits as ever; the policy keeps the result of its job."""
    settings = tmp_path / "keep.toml"
    settings.write_text('[functions."reverse"]\nkeep_results = "1h"\n')
    server = start_geartrain(["--settings", str(settings)])  # in memory: kept there
    try:
        done = subprocess.run(
            ["perl", str(PERL / "client.pl"), str(server.port), "background"],
            capture_output=True,
            timeout=30,
            check=True,
        )
        handle = done.stdout.split()[-1].split(b"//")[-1]  # Perl says "ip:port//handle"
        php_worker(server)
        with SyncClient(server.address) as client:
            assert client.result(handle, timeout=60) == b"gb"
    finally:
        server.cleanup()
