"""``geartrain worker``'s work (Debian's ``gearman -w``) on the asyncio worker.

``geartrain worker -f F [-- cmd args...]`` registers every ``-f`` function.
With no command it writes each workload to stdout and returns an empty
result.  With a command it runs it once per job with the workload on stdin
and returns its stdout; a non-zero exit sends that output as WORK_DATA, then
WORK_FAIL.  ``-n``/``-N`` send the output line by line as WORK_DATA instead.
``-c N`` exits after N jobs.  With ``-t MS``, every MS milliseconds without a
job print a timeout error, and count towards ``-c``, as in the C tool; so do
failed connection attempts.

Departures, each on purpose: ``-n`` sends each line once (gearman 1.1.20
never clears its line buffer, so every packet repeats all earlier lines);
reconnecting backs off instead of spinning; SIGTERM and SIGINT finish the job
in hand before exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from typing import TYPE_CHECKING

from ..connection import DEFAULT_CONNECT_TIMEOUT, Address
from ..worker import Worker
from ..worker_job import WorkerJob
from .output import print_error, write_all

if TYPE_CHECKING:
    from .gearman_args import GearmanArgs

__all__ = ["work"]


def work(args: GearmanArgs) -> int:
    """Worker mode; the exit status is 0, as the C tool's."""
    asyncio.run(_work(args))
    return 0


class _Budget:
    """``-c``: jobs, timeouts and connection failures each use one unit."""

    def __init__(self, count: int, worker: Worker) -> None:
        self.left = count
        self.worker = worker

    def spend(self) -> None:
        if self.left <= 0:
            return
        self.left -= 1
        if self.left == 0:
            self.worker.stop()


class _CliWorker(Worker):
    budget: _Budget | None = None

    def connection_failed(self, address: Address, error: Exception) -> None:
        print_error(
            f"gearman_worker_work : flush(GEARMAN_COULD_NOT_CONNECT) Connection to {address} failed"
        )
        if self.budget is not None:
            self.budget.spend()


async def _work(args: GearmanArgs) -> None:
    timeout = args.timeout_seconds
    worker = _CliWorker(
        args.servers(),
        connect_timeout=timeout if timeout else DEFAULT_CONNECT_TIMEOUT,
        ssl=args.ssl_context(),
        max_backoff=5.0,
    )
    budget = _Budget(args.count, worker)
    worker.budget = budget
    activity = asyncio.Event()
    for function in args.functions:
        worker.register(function, partial(_job, args, budget, activity))
    watchdog = None
    if timeout is not None:
        watchdog = asyncio.get_running_loop().create_task(
            _watch(timeout, activity, budget, len(worker.servers))
        )
    try:
        await worker.run()
    finally:
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog


async def _watch(timeout: float, activity: asyncio.Event, budget: _Budget, servers: int) -> None:
    while True:
        activity.clear()
        try:
            async with asyncio.timeout(timeout):
                await activity.wait()
        except TimeoutError:
            print_error(
                "gearman_worker_work : gearman_wait(GEARMAN_TIMEOUT) timeout reached, "
                f"{servers} servers were poll(), no servers were available, pipe:true"
            )
            budget.spend()


async def _job(
    args: GearmanArgs, budget: _Budget, activity: asyncio.Event, job: WorkerJob
) -> bytes | None:
    activity.set()
    try:
        return await _execute(args, job)
    finally:
        activity.set()
        budget.spend()


async def _execute(args: GearmanArgs, job: WorkerJob) -> bytes | None:
    if not args.arguments:
        write_all(1, job.data)
        return b""
    try:
        proc = await asyncio.create_subprocess_exec(
            *args.arguments,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        print_error(f"execvp ({exc.strerror})")
        job.fail()
        return None
    assert proc.stdin is not None and proc.stdout is not None
    feeder = asyncio.get_running_loop().create_task(_feed(proc.stdin, job.data))
    output = b""
    if args.job_per_newline:
        async for line in proc.stdout:
            if args.strip_newline and line.endswith(b"\n"):
                line = line[:-1]
            job.send_data(line)
    else:
        output = await proc.stdout.read()
    await feeder
    if await proc.wait() != 0:
        if output:
            job.send_data(output)
        job.fail()
        # What the C tool's work loop reports after a failed job.
        print_error("gearman_worker_work : GEARMAN_UNKNOWN_STATE")
        return None
    return output


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    # A command that exits without reading its input is not an error.
    with contextlib.suppress(ConnectionError):
        if data:
            stdin.write(data)
            await stdin.drain()
        stdin.close()
        await stdin.wait_closed()
