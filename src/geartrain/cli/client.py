"""``geartrain client``'s submissions on the asyncio client (foreground, ``-t``, several servers).

Output matches the C tool byte for byte (see :mod:`.output`).  Departures,
each on purpose: ``-N`` strips only a trailing newline (the C tool drops the
last byte of a final line that has none); a job whose connection dies is
resubmitted on another server.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from ..connection import DEFAULT_CONNECT_TIMEOUT
from ..errors import JobException, JobFailed, NoServersAvailable, ServerError
from .output import ClientOutput, describe
from .workloads import workloads

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from ..client import Client
    from .gearman_args import GearmanArgs

__all__ = ["run_client"]


def run_client(args: GearmanArgs) -> int:
    """Client mode; returns the exit status."""
    return asyncio.run(_client(args))


async def _client(args: GearmanArgs) -> int:
    out = ClientOutput(args)
    try:
        await _client_runs(args, out)
    finally:
        out.stdout.fflush()  # what exit() does for C's stdio
    return out.exit_status


async def _client_runs(args: GearmanArgs, out: ClientOutput) -> None:
    from ..client import Client

    timeout = args.timeout_seconds
    client = Client(
        args.servers(),
        exceptions=False,  # as libgearman's tool: exceptions arrive as failures
        connect_timeout=timeout if timeout else DEFAULT_CONNECT_TIMEOUT,
        ssl=args.ssl_context(),
    )
    async with client:
        for workload in workloads(args):
            await _run_tasks(client, args, workload, out)


async def _run_tasks(client: Client, args: GearmanArgs, workload: bytes, out: ClientOutput) -> None:
    """One ``gearman_client_run_tasks``: the workload once per ``-f`` function, concurrently."""
    errors: list[Exception] = []
    out.touch()

    async def one(function: str) -> None:
        try:
            if args.background:
                handle = await client.submit_background(
                    function, workload, unique=args.unique, priority=args.priority
                )
                out.created(handle)
                return
            job = await client.submit_job(
                function,
                workload,
                unique=args.unique,
                priority=args.priority,
                on_status=partial(out.status, function),
                on_data=partial(out.data, function),
                on_warning=partial(out.warning, function),
            )
            out.created(job.handle)
            out.touch()
            try:
                out.data(function, await job.result())
            except JobException as exc:
                out.exception(function, exc.data)
            except JobFailed:
                out.fail(function)
        except (NoServersAvailable, ServerError) as exc:
            errors.append(exc)

    tasks = asyncio.gather(*(one(function) for function in args.functions))
    finished = await _until_idle(tasks, args.timeout_seconds, out)
    if not finished:
        out.error(
            "gearman_client_run_tasks : gearman_wait(GEARMAN_TIMEOUT) timeout reached, "
            f"{len(client.servers)} servers were poll(), no servers were available, pipe:false"
        )
    elif errors:
        out.error(describe(errors[0], args))


async def _until_idle(
    work: asyncio.Future[Any] | Coroutine[Any, Any, Any],
    timeout: float | None,
    out: ClientOutput,
) -> bool:
    """Wait for ``work``; give up (cancel it) after ``timeout`` seconds with no activity."""
    task = asyncio.ensure_future(work)
    while True:
        remaining = None if timeout is None else out.last_activity + timeout - time.monotonic()
        done, _ = await asyncio.wait({task}, timeout=remaining)
        if done:
            task.result()
            return True
        if timeout is not None and time.monotonic() - out.last_activity >= timeout:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return False
