"""``geartrain client``: Debian's ``gearman`` in client mode, on the asyncio client.

Output matches the C tool byte for byte: WORK_DATA and WORK_COMPLETE payloads
go raw to stdout; WORK_WARNING and WORK_EXCEPTION to stderr; WORK_STATUS
prints ``N% Complete``; WORK_FAIL prints ``Job failed`` on stderr and makes
the exit status 1.  Even the ordering does: the C tool writes payloads with
``write(2)`` but ``Task created`` and ``% Complete`` lines with ``printf``,
so when stdout is a pipe those lines come out at exit.  We do the same by
emulating C's stdout buffering (see :class:`~.gearman_args.CStdout`).
Connection errors are reported on stderr and, as with the C tool, do not
change the exit status.

Departures, each on purpose: ``-N`` strips only a trailing newline (the C
tool drops the last byte of a final line that has none); a job whose
connection dies is resubmitted on another server.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Coroutine, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from ..address import Address
from ..errors import JobException, JobFailed, NoServersAvailable, ServerError
from . import submit_background
from .gearman_args import (
    CStdout,
    GearmanArgs,
    daemonize,
    parse,
    pid_file,
    print_error,
    usage,
    write_all,
)

if TYPE_CHECKING:
    import asyncio

    from ..client import Client

__all__ = ["main", "run"]

NAME = "geartrain client"


def main(argv: list[str]) -> int:
    """Run ``gearman``'s client mode (``-w`` switches to worker mode)."""
    return run(parse(argv), NAME)


def run(args: GearmanArgs, name: str) -> int:
    """Usage checks, ``-d``, ``-i``, then client or worker mode; returns the exit status."""
    if args.usage:
        usage(args, name)
        return 0
    if args.is_error:
        usage(args, name)
        return 1
    if args.daemon and daemonize():
        return 0
    try:
        with pid_file(args.pid_file):
            if not args.worker and submit_background.applies(args):
                status = submit_background.run(args, _Output(args, CStdout()), _describe)
                if status is not None:
                    return status
            # Loaded only here: `client -b`, the usual call in a shell loop,
            # starts without asyncio, logging and the libraries.
            import asyncio
            import logging

            # The tools report errors in the C tools' words; the libraries' own
            # warnings (a resubmitted job, a failed job's traceback) stay quiet.
            logging.getLogger("geartrain").setLevel(logging.ERROR)
            if args.worker:
                from .worker import work

                return work(args)
            return asyncio.run(_client(args))
    except OSError as exc:
        print_error(f"Could not open pid file for writing: {args.pid_file} ({exc.strerror})")
        return 1


class _Output:
    """The C tool's client callbacks, with its mix of buffered and raw writes."""

    def __init__(self, args: GearmanArgs, stdout: CStdout) -> None:
        self.args = args
        self.stdout = stdout
        self.failed = False
        self.last_activity = time.monotonic()

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def _prefix_out(self, function: str, flush: bool) -> None:
        if self.args.prefix:
            self.stdout.printf(f"{function}: ")
            if flush:
                self.stdout.fflush()

    def created(self, handle: bytes | None) -> None:
        if self.args.verbose and handle is not None:
            self.stdout.printf(f"Task created: {handle.decode(errors='replace')}\n")

    def data(self, function: str, data: bytes) -> None:
        self.touch()
        self._prefix_out(function, flush=True)
        self.stdout.write(data)

    def warning(self, function: str, data: bytes) -> None:
        self.touch()
        if self.args.prefix:
            write_all(2, f"{function}: ".encode())
        write_all(2, data)

    def status(self, function: str, numerator: int, denominator: int) -> None:
        self.touch()
        self._prefix_out(function, flush=False)
        if denominator:  # the C tool divides by zero here
            percent = (numerator * 100) % 2**32 // denominator
            self.stdout.printf(f"{percent}% Complete\n")

    def fail(self, function: str) -> None:
        if self.args.prefix:
            write_all(2, f"{function}: ".encode())
        write_all(2, b"Job failed\n")
        self.failed = True


def _workloads(args: GearmanArgs) -> Iterator[bytes]:
    if args.arguments:
        for arg in args.arguments:
            yield os.fsencode(arg)
    elif args.suppress_input:
        yield b""
    elif args.job_per_newline:
        for line in sys.stdin.buffer:
            yield line[:-1] if args.strip_newline and line.endswith(b"\n") else line
    else:
        yield sys.stdin.buffer.read()


async def _client(args: GearmanArgs) -> int:
    stdout = CStdout()
    try:
        return await _client_runs(args, _Output(args, stdout))
    finally:
        stdout.fflush()  # what exit() does for C's stdio


async def _client_runs(args: GearmanArgs, out: _Output) -> int:
    from ..client import Client
    from ..connection import DEFAULT_CONNECT_TIMEOUT

    timeout = args.timeout_seconds
    client = Client(
        args.servers(),
        exceptions=False,  # as libgearman's tool: exceptions arrive as failures
        connect_timeout=timeout if timeout else DEFAULT_CONNECT_TIMEOUT,
        ssl=args.ssl_context(),
    )
    async with client:
        for workload in _workloads(args):
            await _run_tasks(client, args, workload, out)
    return 1 if out.failed else 0


async def _run_tasks(client: Client, args: GearmanArgs, workload: bytes, out: _Output) -> None:
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
                out.warning(function, exc.data)
            except JobFailed:
                out.fail(function)
        except (NoServersAvailable, ServerError) as exc:
            errors.append(exc)

    import asyncio

    tasks = asyncio.gather(*(one(function) for function in args.functions))
    finished = await _until_idle(tasks, args.timeout_seconds, out)
    if not finished:
        print_error(
            "gearman_client_run_tasks : gearman_wait(GEARMAN_TIMEOUT) timeout reached, "
            f"{len(client.servers)} servers were poll(), no servers were available, pipe:false"
        )
    elif errors:
        print_error(_describe(errors[0], client.servers))


async def _until_idle(
    work: asyncio.Future[Any] | Coroutine[Any, Any, Any],
    timeout: float | None,
    out: _Output,
) -> bool:
    """Wait for ``work``; give up (cancel it) after ``timeout`` seconds with no activity."""
    import asyncio

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


# ERROR codes a server may answer a submission with that libgearman knows by
# name (its error_code.gperf); any other it reports as GEARMAN_SERVER_ERROR.
_LIBGEARMAN_CODES = frozenset(
    {
        "ARGUMENT_TOO_LARGE",
        "INVALID_ARGUMENT",
        "INVALID_COMMAND",
        "INVALID_FUNCTION_NAME",
        "INVALID_PACKET",
        "JOB_EXISTS",
        "JOB_NOT_FOUND",
        "JOB_QUEUE_FULL",
        "QUEUE_ERROR",
        "SERVER_ERROR",
        "TOO_MANY_ARGS",
        "UNKNOWN_OPTION",
    }
)


def _describe(exc: Exception, servers: list[Address]) -> str:
    if isinstance(exc, ServerError):
        # libgearman's wording for an ERROR packet answering a submission.
        kind = exc.code if exc.code in _LIBGEARMAN_CODES else "SERVER_ERROR"
        return f"gearman_client_run_tasks : _client_run_tasks(GEARMAN_{kind}) {exc.code}:{exc.text}"
    return (
        "gearman_client_run_tasks : flush(GEARMAN_COULD_NOT_CONNECT) "
        f"Connection to {servers[-1]} failed"
    )
