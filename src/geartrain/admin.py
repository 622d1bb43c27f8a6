"""The asyncio admin client: the text admin protocol, with typed answers.

One :class:`Admin` talks to one server (as gearadmin does).  Each method sends
one admin command and parses the answer; ``ERR`` answers raise
:class:`~geartrain.errors.ServerError`.  :meth:`Admin.command` returns the raw
answer for anything else.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass

from .admin_answers import is_listing
from .codecs import Payload, to_bytes
from .connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_IO_TIMEOUT,
    Connection,
    ServerSpec,
    parse_servers,
)
from .errors import ConnectionLost, ServerError
from .kept_results import JobResult, ask_result
from .protocol import PacketType

__all__ = [
    "Admin",
    "FailedJobInfo",
    "FunctionStatus",
    "JobInfo",
    "PriorityStatus",
    "WorkerInfo",
]


def _text(raw: bytes) -> str:
    # Function names and keys are bytes on the wire; keep them round-trippable.
    return raw.decode("utf-8", errors="surrogateescape")


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class FunctionStatus:
    """A line of ``status``."""

    function: str
    total: int
    """Jobs queued plus running."""
    running: int
    workers: int
    """Workers that can do the function."""

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker."""
        return self.total - self.running


@dataclass(frozen=True, slots=True)
class PriorityStatus:
    """A line of ``prioritystatus``: queued jobs by priority."""

    function: str
    high: int
    normal: int
    low: int
    workers: int


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A line of ``workers`` (every connection: workers, clients, admins)."""

    fd: int
    ip: str
    client_id: str | None
    """None when the connection sent no client id (shown as ``-``)."""
    functions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A line of ``show jobs``."""

    handle: bytes
    """As the binary protocol carries it (bytes everywhere in the libraries)."""
    retries: int
    ignored: bool
    """Cancelled or abandoned: it will be dropped instead of run."""
    queued: bool
    """gearmand's ``job_queued``: a background (persistable) job."""


@dataclass(frozen=True, slots=True)
class FailedJobInfo:
    """A line of ``show failed jobs`` (geartrain only): a background job that failed for good."""

    handle: str
    function: str
    unique: str
    attempts: int
    failed_at: int
    """Epoch seconds."""
    reason: str
    """The last attempt's outcome: ``fail``, ``exception: <text>``, ``worker_lost``, ``timeout``."""


class Admin:
    """An asyncio admin client for one job server.

    Use it as ``async with Admin("host:4730") as admin: print(await admin.status())``.

    Args:
        server: the server, in any form :class:`~geartrain.Client` takes.  Given
            several, the admin talks to the first one that accepts a connection
            (``server`` then says which).
    """

    def __init__(
        self,
        server: ServerSpec | Iterable[ServerSpec] = "localhost:4730",
        *,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        io_timeout: float | None = DEFAULT_IO_TIMEOUT,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        self.servers = parse_servers(server)
        self.server = self.servers[0]
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout
        self.ssl = ssl
        self._conn: Connection | None = None
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> Admin:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (the next call reconnects)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            await conn.wait_closed()

    async def _connection(self) -> Connection:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = await self._open()
            return self._conn

    async def _open(self) -> Connection:
        # The server that answered last goes first.
        order = [self.server, *(s for s in self.servers if s != self.server)]
        for address in order:
            try:
                conn = await Connection.open(
                    address,
                    connect_timeout=self.connect_timeout,
                    ssl=self.ssl,
                    io_timeout=self.io_timeout,
                )
            except ConnectionLost:
                if address == order[-1]:
                    raise
                continue
            self.server = address
            return conn
        raise AssertionError("unreachable")  # pragma: no cover

    async def command(self, line: str | bytes, *, listing: bool | None = None) -> bytes:
        """Send one admin command line; return the raw answer, line endings included.

        ``listing`` (guessed from the command word when None) says whether the
        answer is a list ended by a ``.`` line.
        """
        raw = to_bytes(line)
        if listing is None:
            listing = is_listing(raw)
        conn = await self._connection()
        return await conn.text(raw, listing=listing)

    async def _lines(self, line: str) -> list[str]:
        answer = _checked(await self.command(line, listing=True))
        lines = answer.split(b"\n")
        out = [_text(ln.removesuffix(b"\r")) for ln in lines]
        # Drop the final "." line and what follows it (the empty split tail).
        while out and out[-1] != ".":
            out.pop()
        return out[:-1]

    async def _value(self, line: str) -> str:
        answer = _checked(await self.command(line, listing=False)).rstrip(b"\r\n")
        if answer == b"OK":
            return ""
        if answer.startswith(b"OK "):
            return _text(answer[3:])
        return _text(answer)

    # -- listings ------------------------------------------------------------------

    async def status(self) -> list[FunctionStatus]:
        """Every function the server knows: jobs in total, running, and workers."""
        out = []
        for line in await self._lines("status"):
            parts = line.split("\t")
            if len(parts) >= 4:
                out.append(FunctionStatus(parts[0], *(_int(p) for p in parts[1:4])))
        return out

    async def priority_status(self) -> list[PriorityStatus]:
        """Queued jobs of every function by priority (gearmand 1.1.15+)."""
        out = []
        for line in await self._lines("prioritystatus"):
            parts = line.split("\t")
            if len(parts) >= 5:
                out.append(PriorityStatus(parts[0], *(_int(p) for p in parts[1:5])))
        return out

    async def workers(self) -> list[WorkerInfo]:
        """Every connection: its fd, address, client id and registered functions."""
        out = []
        for line in await self._lines("workers"):
            head, _, tail = line.partition(" :")
            parts = head.split(" ")
            if len(parts) < 3:
                continue
            client_id = " ".join(parts[2:])
            out.append(
                WorkerInfo(
                    fd=_int(parts[0]),
                    ip=parts[1],
                    client_id=None if client_id == "-" else client_id,
                    functions=tuple(f for f in tail.split(" ") if f),
                )
            )
        return out

    async def show_jobs(self) -> list[JobInfo]:
        """Every job the server holds: handle, retries, ignored, queued."""
        out = []
        for line in await self._lines("show jobs"):
            parts = line.split("\t")
            if len(parts) >= 4:
                handle = parts[0].encode("utf-8", errors="surrogateescape")
                out.append(JobInfo(handle, _int(parts[1]), parts[2] == "1", parts[3] == "1"))
        return out

    async def show_unique_jobs(self) -> list[str]:
        """The unique key of every job (empty for jobs submitted without one)."""
        return await self._lines("show unique jobs")

    # -- values ----------------------------------------------------------------------------

    async def version(self) -> str:
        """The server's version, e.g. ``"1.1.20+ds"``."""
        return await self._value("version")

    async def verbose(self) -> str:
        """The server's log level, e.g. ``"ERROR"``."""
        return await self._value("verbose")

    async def getpid(self) -> int:
        """The server's process id."""
        return int(await self._value("getpid"))

    async def ping(self) -> float:
        """Round-trip an ECHO_REQ; return the seconds it took."""
        conn = await self._connection()
        start = time.perf_counter()
        await conn.request(PacketType.ECHO_REQ, b"ping")
        return time.perf_counter() - start

    # -- management --------------------------------------------------------------------------

    async def maxqueue(self, function: str, size: int | tuple[int, int, int] | None = None) -> None:
        """Limit the queue of ``function``: one size for all priorities, or (high, normal, low).

        0 or None means unlimited.
        """
        if size is None:
            line = f"maxqueue {function}"
        elif isinstance(size, tuple):
            line = f"maxqueue {function} {size[0]} {size[1]} {size[2]}"
        else:
            line = f"maxqueue {function} {size}"
        await self._value(line)

    async def cancel_job(self, handle: Payload) -> bool:
        """Cancel a queued job; False if the server does not know the handle."""
        try:
            await self._value("cancel job " + to_bytes(handle).decode(errors="surrogateescape"))
        except ServerError as exc:
            if exc.code == "UNKNOWN_JOB":
                return False
            raise
        return True

    async def create_function(self, name: str) -> None:
        """Create a function (it then shows in ``status``)."""
        await self._value(f"create function {name}")

    async def drop_function(self, name: str) -> None:
        """Drop a function that has no workers and no jobs.

        Raises:
            ServerError: it still has workers or jobs, or does not exist.
        """
        await self._value(f"drop function {name}")

    async def shutdown(self, graceful: bool = False) -> None:
        """Ask the server to shut down (gracefully: once its jobs are done).

        geartrain accepts this from loopback peers; gearmand 1.1 removed the
        command and answers ERR UNKNOWN_COMMAND (raised as ServerError).
        """
        await self._value("shutdown graceful" if graceful else "shutdown")

    # -- paused functions (geartrain's own commands) -----------------------------------

    async def pause(self, function: str) -> None:
        """Pause ``function``: its jobs stay queued and no worker gets one until
        :meth:`resume` (running jobs finish).  No error if it is paused already.

        Raises:
            ServerError: the server refused (gearmand has no such command:
                ``UNKNOWN_COMMAND``), or could not keep the pause across a
                restart (``QUEUE_ERROR``; it holds until then).
        """
        await self._value(f"pause {function}")

    async def resume(self, function: str) -> None:
        """Let workers have ``function``'s jobs again; sleeping workers are woken."""
        await self._value(f"resume {function}")

    async def paused(self) -> list[str]:
        """The paused functions, sorted."""
        return await self._lines("paused")

    # -- the failed-job set (geartrain's own commands) ---------------------------------

    async def show_failed_jobs(self, function: str | None = None) -> list[FailedJobInfo]:
        """Background jobs that failed for good, oldest first (of one function if given)."""
        out = []
        line = "show failed jobs" + (f" {function}" if function else "")
        for text in await self._lines(line):
            parts = text.split("\t")
            if len(parts) >= 6:
                out.append(
                    FailedJobInfo(
                        parts[0], parts[1], parts[2], _int(parts[3]), _int(parts[4]), parts[5]
                    )
                )
        return out

    async def retry_failed(self, handle: Payload) -> bool:
        """Run a failed job again under its old handle; False if no such failed job."""
        return await self._failed_one("retry", handle)

    async def delete_failed(self, handle: Payload) -> bool:
        """Forget a failed job; False if no such failed job."""
        return await self._failed_one("delete", handle)

    async def retry_failed_all(self, function: str | None = None) -> int:
        """Run every failed job (of one function if given) again; returns how many."""
        return _int(await self._value("retry failed all" + (f" {function}" if function else "")))

    async def delete_failed_all(self, function: str | None = None) -> int:
        """Forget every failed job (of one function if given); returns how many."""
        return _int(await self._value("delete failed all" + (f" {function}" if function else "")))

    # -- kept results of background jobs (geartrain's own command) ---------------------

    async def result(self, handle: Payload, wait: float = 0) -> JobResult | None:
        """A background job's kept result (``result HANDLE [WAIT]``): ended, or
        queued or running after ``wait`` seconds; None if the server keeps no
        result of that handle.  ServerError from a server without the command."""
        conn = await self._connection()
        return await ask_result(conn, to_bytes(handle), wait, self.io_timeout)

    async def _failed_one(self, verb: str, handle: Payload) -> bool:
        try:
            await self._value(f"{verb} failed " + to_bytes(handle).decode(errors="surrogateescape"))
        except ServerError as exc:
            if exc.code == "UNKNOWN_JOB":
                return False
            raise
        return True


def _checked(answer: bytes) -> bytes:
    if answer.startswith(b"ERR"):
        words = answer.rstrip(b"\r\n").split(b" ", 2)
        code = _text(words[1]) if len(words) > 1 else "UNKNOWN"
        text = _text(words[2]) if len(words) > 2 else ""
        raise ServerError(code, text)
    return answer
