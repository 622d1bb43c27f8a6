"""Helpers for the tests: waiting for a condition, registered workers, a full disk."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from geartrain import Admin, Worker


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, interval: float = 0.02
) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def registered(address: str, function: str, workers: int = 1) -> bool:
    """True once the server lists ``workers`` workers for ``function``."""
    async with Admin(address) as admin:
        for status in await admin.status():
            if status.function == function:
                return status.workers >= workers
    return False


@asynccontextmanager
async def working(worker: Worker, *functions: str) -> AsyncIterator[Worker]:
    """Run ``worker`` for the block; wait until every server lists ``functions``."""
    await worker.start()
    try:
        for address in worker.servers:
            for function in functions or tuple(worker.functions):
                await wait_for(lambda a=address, f=function: registered(str(a), f))
        yield worker
    finally:
        worker.stop(graceful=False)
        await worker.wait()


async def queued(address: str, function: str) -> int:
    """Jobs of ``function`` the server holds (queued plus running)."""
    async with Admin(address) as admin:
        for status in await admin.status():
            if status.function == function:
                return status.total
    return 0


def echo_worker(address: str | list[str], **kwargs: Any) -> Worker:
    """A worker with ``echo`` (returns the data) and ``strlen`` (returns its length)."""
    worker = Worker(address, **kwargs)

    @worker.register("echo")
    async def echo(job: Any) -> bytes:
        return bytes(job.data)

    @worker.register("strlen")
    async def strlen(job: Any) -> str:
        return str(len(job.data))

    return worker


def take_the_rest(disk: Path) -> Path:
    """Another program writes until the disk has not a byte left."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return filler
