"""Python and PHP (php-gearman, i.e. libgearman) peers exchange binary payloads intact.

A Python client with a PHP worker, and a PHP client with a Python worker, on
geartrain and on gearmand: payloads with NUL bytes and of 1 MiB arrive byte
for byte, and failures are reported on both sides.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from geartrain import Client, JobFailed, ResultDecodeError, Worker, WorkerJob
from geartrain.codecs import dumps
from gt_helpers import registered, wait_for, working
from serverproc import ServerProc

R = TypeVar("R")

PHP = shutil.which("php")
PEERS = Path(__file__).parent / "php_peers"

pytestmark = [
    pytest.mark.interop,
    pytest.mark.in_process,
    pytest.mark.timeout(60),
    pytest.mark.skipif(PHP is None, reason="php with the gearman extension"),
]

PAYLOADS = {
    "nul-bytes": b"\0a\0\0b\0" + bytes(range(256)) + b"\0",
    "one-mib": bytes(range(256)) * 4096,  # 1 MiB, every byte value, NULs included
    "empty": b"",
    "utf8": "naïve café ✓".encode(),
}


def _digest(data: bytes) -> bytes:
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}".encode()


@pytest.fixture
def php_worker(server: ServerProc) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [str(PHP), str(PEERS / "worker.php"), server.host, str(server.port), "1000"]
    )
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
async def test_python_client_php_worker(
    server: ServerProc, php_worker: subprocess.Popen[bytes], payload: bytes
) -> None:
    await wait_for(lambda: registered(server.address, "reverse"))
    async with Client(server.address) as client:
        assert await client.submit("reverse", payload) == payload[::-1]
        assert await client.submit("digest", payload) == _digest(payload)


async def test_python_client_php_worker_failure_and_background(
    server: ServerProc, php_worker: subprocess.Popen[bytes]
) -> None:
    await wait_for(lambda: registered(server.address, "fail"))
    async with Client(server.address) as client:
        with pytest.raises(JobFailed):
            await client.submit("fail", b"x")
        handle = await client.submit_background("digest", PAYLOADS["one-mib"])
        await wait_for(lambda: _finished(client, handle))


async def test_a_php_workers_result_comes_back_through_the_codec_that_sent_the_data(
    server: ServerProc, php_worker: subprocess.Popen[bytes]
) -> None:
    await wait_for(lambda: registered(server.address, "reverse"))
    async with Client(server.address) as client:
        assert await client.submit("reverse", 123) == 321  # JSON both ways
        assert await client.submit("reverse", b"123") == b"321"  # bytes both ways
        with pytest.raises(ResultDecodeError) as caught:
            await client.submit("reverse", {"a": 1})  # the reverse is no JSON
    assert caught.value.data == b'}1:"a"{' and caught.value.handle.startswith(b"H:")
    async with Client(server.address) as client:  # JSON sent as bytes: the result's bytes
        assert await client.submit("reverse", dumps({"a": 1})) == b'}1:"a"{'


async def _finished(client: Client, handle: bytes) -> bool:
    return not (await client.get_status(handle)).known


def _php_client(server: ServerProc, function: str, payload: bytes, *extra: str) -> tuple:
    proc = subprocess.run(
        [str(PHP), str(PEERS / "client.php"), server.host, str(server.port), function, *extra],
        input=payload,
        capture_output=True,
        timeout=30,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _python_worker(address: str) -> Worker:
    worker = Worker(address, concurrency=2)

    @worker.register("reverse")
    async def reverse(job: WorkerJob) -> bytes:
        return job.data[::-1]

    @worker.register("digest")
    def digest(job: WorkerJob) -> bytes:
        return _digest(job.data)

    @worker.register("fail")
    async def fail(job: WorkerJob) -> None:
        job.fail()

    return worker


# libgearman refuses to send an empty workload ("invalid workload"), so the
# PHP client cases leave that one out.
PHP_PAYLOADS = {name: data for name, data in PAYLOADS.items() if data}


@pytest.mark.parametrize("payload", PHP_PAYLOADS.values(), ids=PHP_PAYLOADS.keys())
async def test_php_client_python_worker(server: ServerProc, payload: bytes) -> None:
    async with working(_python_worker(server.address)):
        for function, expected in (("reverse", payload[::-1]), ("digest", _digest(payload))):
            rc, out, err = await _in_thread(_php_client, server, function, payload)
            assert (rc, err) == (0, b"")
            assert out == expected


async def test_php_client_python_worker_failure_and_background(server: ServerProc) -> None:
    async with working(_python_worker(server.address)):
        rc, _, err = await _in_thread(_php_client, server, "fail", b"x")
        assert rc == 1 and err == b"failed\n"
        rc, handle, _ = await _in_thread(
            _php_client, server, "digest", PAYLOADS["nul-bytes"], "background"
        )
        assert rc == 0 and handle.startswith(b"H:")


async def _in_thread(func: Callable[..., R], *args: object) -> R:
    return await asyncio.to_thread(func, *args)
