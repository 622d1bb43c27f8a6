"""The asyncio client: submit jobs, follow their progress, ask their status.

Server choice and failover live here.  A job with a unique key goes to the
server its key hashes to (so duplicates coalesce across a cluster); other jobs
go round robin.  A server that cannot be reached, or whose connection drops
before it answered JOB_CREATED, is marked down for a backoff period and the
submission moves on to the next server.  A foreground job whose server dies
after JOB_CREATED is submitted again on another server (``resubmit=True``, the
default): the job is not lost, but it may run twice.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import ssl as _ssl
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeAlias

from . import tracing
from .client_job import (
    DataUpdate,
    Job,
    JobStatus,
    StatusUpdate,
    Update,
    WarningUpdate,
    as_completed,
    parse_status,
)
from .codecs import Codec, Payload, codec_for, encode, to_bytes
from .connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_IO_TIMEOUT,
    Connection,
    ServerSpec,
    parse_servers,
)
from .cron import sched_args
from .durations import Duration, parse_duration
from .errors import (
    ConnectionLost,
    GearmanError,
    JobCancelled,
    JobTimeout,
    NoServersAvailable,
    ServerError,
)
from .extensions import keep_result as keep_result_option
from .kept_results import BackgroundJob, JobResult, ask_result, outcome
from .links import ServerLink
from .priority import Priority
from .protocol import Packet, PacketType, submit_packet
from .retry import Retry

__all__ = [
    "Client",
    "DataUpdate",
    "Job",
    "JobRequest",
    "JobStatus",
    "Priority",
    "StatusUpdate",
    "Update",
    "WarningUpdate",
    "as_completed",
]

log = logging.getLogger("geartrain.client")

T = PacketType


# Remembered handle -> server of background jobs, for status by handle.
_HANDLE_MEMORY = 10_000

When: TypeAlias = "datetime | float | int"
"""A time to run a job at: a datetime or a Unix time."""

_Timing: TypeAlias = tuple[PacketType, tuple[bytes, ...]]
"""A timed submission: SUBMIT_JOB_EPOCH or _SCHED, and its time fields."""


@dataclass(frozen=True)
class JobRequest:
    """One job of a batch (see :meth:`Client.submit_batch`)."""

    function: str
    data: Any = b""
    """Bytes, str, or an object for the function's codec (JSON by default)."""
    unique: Payload | None = None
    priority: Priority = Priority.NORMAL
    timeout: float | None = None
    retry: Retry | None = None
    """The job's retry policy (see :meth:`Client.submit`)."""


def hash_key(unique: bytes) -> int:
    """The server index hash of a unique key: Perl Gearman::Client's, so both agree."""
    return (zlib.crc32(unique) >> 16) & 0x7FFF


class Client:
    """An asyncio Gearman client for one or more job servers.

    Use it as ``async with Client(["host1:4730", "host2:4730"]) as client:``.

    Args:
        servers: the job servers: ``"host:port"`` strings (or one string with
            commas), ``(host, port)`` tuples, or bare hosts (port 4730).
            Defaults to ``localhost:4730``.
        client_id: sent with SET_CLIENT_ID; shown by the admin ``workers`` command.
        connect_timeout: seconds to wait for a server to accept a connection.
        io_timeout: seconds to wait for a server's answer to a request.
        exceptions: ask servers to forward WORK_EXCEPTION (OPTION_REQ
            "exceptions"); without it a worker exception arrives as a failure.
        resubmit: submit a foreground job again on another server when its
            server dies before the job finished.  The job may then run twice.
        max_backoff: the longest time a failed server is skipped before it is
            tried again.
        ssl: a TLS context, for servers that require TLS.
        codecs: a :class:`~geartrain.codecs.Codec` per function name: objects
            (not bytes or str) submitted to it are encoded with it, and its
            results decoded with it.  Without one, objects go as JSON and
            their results come back decoded from JSON; bytes and str get
            bytes back (see :mod:`geartrain.codecs`).
    """

    def __init__(
        self,
        servers: ServerSpec | Iterable[ServerSpec] | None = None,
        *,
        client_id: Payload | None = None,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        io_timeout: float | None = DEFAULT_IO_TIMEOUT,
        exceptions: bool = True,
        resubmit: bool = True,
        max_backoff: float = 30.0,
        ssl: _ssl.SSLContext | None = None,
        codecs: Mapping[str, Codec] | None = None,
    ) -> None:
        self.servers = parse_servers(servers)
        self.codecs: dict[str, Codec] = dict(codecs or {})
        self.client_id = to_bytes(client_id) if client_id else b""
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout
        self.exceptions = exceptions
        self.resubmit = resubmit
        self.max_backoff = max_backoff
        self.ssl = ssl
        self.closing = False
        self._links: list[ServerLink] | None = None
        self._round_robin = itertools.count()
        self._handles: OrderedDict[bytes, ServerLink] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def links(self) -> list[ServerLink]:
        # Created lazily: a Client may be built outside a running loop.
        if self._links is None:
            self._links = [ServerLink(self, address) for address in self.servers]
        return self._links

    async def close(self) -> None:
        """Close every connection; unfinished jobs fail with ConnectionLost."""
        self.closing = True
        for task in list(self._tasks):
            task.cancel()
        closed = []
        for link in self.links:
            jobs = [job for group in link.jobs.values() for job in group]
            link.jobs.clear()
            if (conn := link.close()) is not None:
                closed.append(conn.wait_closed())
            for job in jobs:
                job._finish_error(ConnectionLost("client closed"))
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*closed)
        self.closing = False  # usable again: the next call reconnects

    # -- foreground jobs --------------------------------------------------------

    async def submit(
        self,
        function: str,
        data: Any = b"",
        *,
        unique: Payload | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
        retry: Retry | None = None,
    ) -> Any:
        """Run a job and return its result: decoded by the function's codec, else by the
        one that encoded ``data`` (JSON for objects); bytes for bytes or str data.

        ``data`` is bytes, str (sent as UTF-8) or an object for the
        function's codec (JSON by default).  With OpenTelemetry installed the
        call is a PRODUCER span ``gearman.submit <function>``.

        ``retry`` (a :class:`~geartrain.Retry`) asks the server to run the job
        again after a failed attempt, ``Retry(attempts=3)`` up to three in
        all: the result is the attempt that succeeded, or the last failure.
        It travels in geartrain's retries extension and wins over the
        function's policies (docs/failures.md); a server without the
        extension (gearmand) runs the job once, with a warning in the log.

        Raises:
            ResultDecodeError: the result is not what the codec reads.
            JobFailed: the worker failed the job (WORK_FAIL).
            JobException: the worker raised (WORK_EXCEPTION); ``.data`` holds its payload.
            JobTimeout: no result within ``timeout`` seconds.
            NoServersAvailable: no server could take the job.
            ServerError: the server refused the job (e.g. its queue is full).
        """
        with tracing.span("gearman.submit", "PRODUCER", function) as span:
            job = await self.submit_job(
                function, data, unique=unique, priority=priority, timeout=timeout, retry=retry
            )
            tracing.set_handle(span, job.handle)
            try:
                return await job.result()
            except asyncio.CancelledError:
                job._abandon(JobCancelled(job.handle or b""))
                raise

    async def submit_job(
        self,
        function: str,
        data: Any = b"",
        *,
        unique: Payload | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
        on_status: Callable[[int, int], Any] | None = None,
        on_data: Callable[[bytes], Any] | None = None,
        on_warning: Callable[[bytes], Any] | None = None,
        retry: Retry | None = None,
    ) -> Job:
        """Submit a foreground job; return it once a server has accepted it.

        Await the returned :class:`Job` (or ``job.result()``) for the result,
        and iterate it (``async for update in job``) for its WORK_STATUS,
        WORK_DATA and WORK_WARNING updates; or pass the ``on_*`` callbacks.
        ``timeout`` covers the whole job, submission included; ``retry`` as
        for :meth:`submit`.

        Raises:
            NoServersAvailable, ServerError, JobTimeout: as for :meth:`submit`.
        """
        job = self._new_job(JobRequest(function, data, unique, priority, timeout, retry))
        job._callbacks = (on_status, on_data, on_warning)
        await self._start(job)
        return job

    async def submit_batch(self, requests: Iterable[JobRequest | tuple[str, Any]]) -> list[Job]:
        """Submit many foreground jobs at once (pipelined), in order.

        Never raises for one job: a job that could not be submitted is
        returned failed.  Gather results with ``await job`` or
        :func:`as_completed`.
        """
        jobs = [
            self._new_job(req if isinstance(req, JobRequest) else JobRequest(*req))
            for req in requests
        ]
        await asyncio.gather(*(self._start(job, raise_errors=False) for job in jobs))
        return jobs

    def _new_job(self, req: JobRequest) -> Job:
        unique = to_bytes(req.unique) if req.unique is not None else b""
        job = Job(
            self,
            req.function,
            self._encode(req.function, req.data),
            unique,
            Priority(req.priority),
            req.timeout,
        )
        job.retry = _checked(req.retry)
        # The codec applies both ways: the function's, else the one that encoded the data.
        job._codec = self.codecs.get(req.function) or codec_for(req.data)
        return job

    async def _start(self, job: Job, *, raise_errors: bool = True) -> None:
        job._arm_timer()
        try:
            async with asyncio.timeout_at(job._deadline):
                await self._dispatch(job, background=False)
        except TimeoutError:
            job._expire()
            if raise_errors:
                raise JobTimeout(job.handle) from None
        except GearmanError as exc:
            job._finish_error(exc)
            if raise_errors:
                raise
        except asyncio.CancelledError:
            # A JOB_CREATED still on its way withdraws the job (see _created).
            job._finish_error(JobCancelled(job.handle or b""))
            raise

    def job_lost(self, job: Job, link: ServerLink) -> None:
        """A foreground job's server went away after accepting it."""
        if job.done():
            return
        name = (job.handle or b"").decode(errors="replace")
        lost = ConnectionLost(f"server {link.address} lost while job {name} ran")
        if not self.resubmit:
            job._finish_error(lost)
            return
        log.warning("%s; submitting job %r again", lost, job.function)
        job.resubmits += 1
        self._spawn(self._resubmit(job))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background; :meth:`close` cancels it."""
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resubmit(self, job: Job) -> None:
        try:
            async with asyncio.timeout_at(job._deadline):
                await self._dispatch(job, background=False)
        except TimeoutError:
            job._expire()
        except GearmanError as exc:
            job._finish_error(exc)
        except asyncio.CancelledError:
            job._finish_error(ConnectionLost("client closed"))
            raise

    # -- background jobs ------------------------------------------------------------

    async def submit_background(
        self,
        function: str,
        data: Any = b"",
        *,
        unique: Payload | None = None,
        priority: Priority = Priority.NORMAL,
        when: When | None = None,
        retry: Retry | None = None,
        keep_result: Duration | None = None,
    ) -> BackgroundJob:
        """Queue a background job and return its handle.

        ``unique`` defaults to a random UUID (as libgearman does), so durable
        queues key each job apart.  ``when`` (a datetime or a Unix time) makes
        it an epoch job that runs at that time, as :meth:`submit_at`.
        ``retry`` as for :meth:`submit`; it is kept in the server's memory
        only: a job restored after a restart runs by its function's policy.
        ``keep_result`` (seconds, a timedelta, or ``"90s"``, ``"15m"``, ``"1h"``)
        asks a geartrain server to keep the job's result that long after it
        ends (its function's policy may keep it anyway).

        The handle is a :class:`~geartrain.BackgroundJob`: bytes, and
        ``await handle.result(timeout=...)`` fetches the kept result.

        Raises:
            NoServersAvailable, ServerError: as for :meth:`submit`;
                ServerError ``UNKNOWN_OPTION`` for ``keep_result`` where the
                server does not keep results (gearmand).
        """
        if when is not None and priority is not Priority.NORMAL:
            raise ValueError("epoch jobs always run at normal priority")
        timing = (T.SUBMIT_JOB_EPOCH, (str(_epoch(when)).encode(),)) if when is not None else None
        return await self._background(function, data, unique, priority, timing, retry, keep_result)

    async def submit_at(
        self,
        when: When,
        function: str,
        data: Any = b"",
        *,
        unique: Payload | None = None,
        keep_result: Duration | None = None,
    ) -> BackgroundJob:
        """Queue a background job that runs at ``when``; return its handle.

        ``when`` is a datetime (a naive one is local time) or a Unix time, to
        the second.  The job is sent with SUBMIT_JOB_EPOCH (normal priority);
        one in the past runs at once.

        Raises:
            NoServersAvailable, ServerError: as for :meth:`submit`.
        """
        return await self.submit_background(
            function, data, unique=unique, when=when, keep_result=keep_result
        )

    async def submit_later(
        self,
        delay: float | timedelta,
        function: str,
        data: Any = b"",
        *,
        unique: Payload | None = None,
        keep_result: Duration | None = None,
    ) -> BackgroundJob:
        """Queue a background job that runs ``delay`` seconds from now; return its handle.

        The time is rounded up to the next whole second (SUBMIT_JOB_EPOCH), so
        the job never runs early.

        Raises:
            ValueError: a negative delay.
            NoServersAvailable, ServerError: as for :meth:`submit`.
        """
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if seconds < 0:
            raise ValueError(f"delay must not be negative, not {delay!r}")
        when = math.ceil(time.time() + seconds)
        return await self.submit_at(when, function, data, unique=unique, keep_result=keep_result)

    async def submit_cron(
        self,
        cron: str,
        function: str,
        data: Any = b"",
        *,
        unique: Payload | None = None,
        keep_result: Duration | None = None,
    ) -> BackgroundJob:
        """Queue a background job for the next minute that matches ``cron``; return its handle.

        ``cron`` is ``"minute hour day-of-month month day-of-week"`` (UTC), each
        field a number or ``*``: ``"30 2 * * *"`` runs once, at the next 02:30.
        A minute that matches now runs at once.  The job is sent with
        SUBMIT_JOB_SCHED (normal priority), which geartrain implements and
        gearmand refuses (ServerError).  It runs once: recurring schedules
        live in the server's settings file.

        Raises:
            ValueError: a field that is not a number or ``*``, or out of range.
            NoServersAvailable, ServerError: as for :meth:`submit`.
        """
        timing = (T.SUBMIT_JOB_SCHED, sched_args(cron))
        return await self._background(
            function, data, unique, Priority.NORMAL, timing, keep_result=keep_result
        )

    async def _background(
        self,
        function: str,
        data: Any,
        unique: Payload | None,
        priority: Priority,
        timing: _Timing | None,
        retry: Retry | None = None,
        keep_result: Duration | None = None,
    ) -> BackgroundJob:
        keep = _keep(keep_result) if keep_result is not None else 0.0
        key = to_bytes(unique) if unique is not None else str(uuid.uuid4()).encode()
        job = Job(self, function, self._encode(function, data), key, Priority(priority), None)
        job.retry = _checked(retry)
        with tracing.span("gearman.submit_background", "PRODUCER", function) as span:
            await self._dispatch(job, background=True, timing=timing, keep_result=keep)
            tracing.set_handle(span, job.handle)
        assert job.handle is not None
        codec = self.codecs.get(function) or codec_for(data)
        return BackgroundJob(job.handle, partial(self._result, codec=codec))

    def _encode(self, function: str, data: Any) -> bytes:
        return encode(data, self.codecs.get(function))

    def _remember(self, handle: bytes, link: ServerLink) -> None:
        self._handles[handle] = link
        self._handles.move_to_end(handle)
        while len(self._handles) > _HANDLE_MEMORY:
            self._handles.popitem(last=False)

    # -- submission and failover ---------------------------------------------------------

    def _candidates(self, unique: bytes) -> list[ServerLink]:
        links = self.links
        start = hash_key(unique) if unique else next(self._round_robin)
        start %= len(links)
        ordered = links[start:] + links[:start]
        now = asyncio.get_running_loop().time()
        # Servers that failed recently go last: tried only if all others fail.
        return [ln for ln in ordered if not ln.is_down(now)] + [
            ln for ln in ordered if ln.is_down(now)
        ]

    async def _dispatch(
        self,
        job: Job,
        *,
        background: bool,
        timing: _Timing | None = None,
        keep_result: float = 0.0,
    ) -> ServerLink:
        args: tuple[bytes, ...]
        if timing is not None:
            packet_type, when = timing
            args = (job.function.encode(), job.unique, *when, job.data)
        else:
            packet_type = submit_packet(Priority(job.priority).level, background)
            args = (job.function.encode(), job.unique, job.data)
        failures: list[ConnectionLost] = []
        for link in self._candidates(job.unique):
            if self.closing:
                raise ConnectionLost("client closed")
            if job.done():
                raise job.error() or NoServersAvailable("job ended during submission")
            try:
                reply = await link.request(
                    packet_type,
                    *args,
                    on_reply=partial(self._created, job, link, background),
                    retry=job.retry,
                    keep_result=keep_result,
                )
            except ConnectionLost as exc:
                failures.append(exc)
                continue
            if reply.type is T.ERROR:
                code, text = _error_args(reply)
                raise ServerError(code, text)
            return link
        raise NoServersAvailable(
            "no server accepted the job: " + ("; ".join(map(str, failures)) or "all skipped")
        ) from (failures[-1] if failures else None)

    def _created(self, job: Job, link: ServerLink, background: bool, packet: Packet) -> None:
        # Runs as JOB_CREATED is decoded, before this job's WORK_* can be.
        if packet.type is not T.JOB_CREATED:
            return
        job.handle = packet.args[0]
        job.server = link.address
        job._link = link
        self._remember(job.handle, link)
        if background:
            return
        if job.done():  # given up on while the submission was under way
            self._spawn(link.withdraw(job.handle, job.unique))
        else:
            link.jobs.setdefault(job.handle, []).append(job)

    # -- status -----------------------------------------------------------------------------

    async def get_status(self, handle: Payload, *, server: ServerSpec | None = None) -> JobStatus:
        """Ask a server about a job by its handle (GET_STATUS).

        Handles are only unique per server.  The server is the one given,
        else the one this client submitted the job to, else each server in
        turn until one knows the handle.

        Raises:
            NoServersAvailable: no server could be asked.
        """
        key = to_bytes(handle)
        links = self._status_order(self._handles.get(key), server)
        try:
            return await self._ask(links, T.GET_STATUS, key)
        finally:
            self._drop_temporary(links[0])

    async def get_status_unique(self, unique: Payload) -> JobStatus:
        """Ask about a job by its unique key (GET_STATUS_UNIQUE); ``clients`` is set.

        Servers are asked in the order the key hashes to, until one knows it.
        """
        key = to_bytes(unique)
        return await self._ask(self._candidates(key), T.GET_STATUS_UNIQUE, key)

    def _status_order(
        self, known: ServerLink | None, server: ServerSpec | None
    ) -> list[ServerLink]:
        if server is not None:
            address = parse_servers([server])[0]
            for link in self.links:
                if link.address == address:
                    return [link]
            return [ServerLink(self, address)]
        links = list(self.links)
        if known is not None:
            links.remove(known)
            links.insert(0, known)
        return links

    async def _ask(self, links: list[ServerLink], packet_type: PacketType, key: bytes) -> JobStatus:
        answer: JobStatus | None = None
        failures: list[str] = []
        for link in links:
            try:
                reply = await link.request(packet_type, key)
            except ConnectionLost as exc:
                failures.append(str(exc))
                continue
            if reply.type is T.ERROR:
                raise ServerError(*_error_args(reply))
            answer = parse_status(reply)
            if answer.known:
                return answer
        if answer is None:
            raise NoServersAvailable("no server answered: " + "; ".join(failures))
        return answer

    # -- kept results of background jobs -------------------------------------------------

    async def result(
        self,
        handle: Payload,
        *,
        timeout: float | None = None,
        server: ServerSpec | None = None,
        codec: Codec | None = None,
    ) -> Any:
        """The kept result of a background job: wait up to ``timeout`` seconds
        (None: until it ends; 0: ask once) for a job still queued or running,
        then return its WORK_COMPLETE data (decoded by ``codec`` if given) or
        raise what a foreground job would have raised.

        A geartrain server keeps results when the function's policy says
        ``keep_results`` or the submission asked (``keep_result``).  The server
        is the one given, else the one this client submitted the job to, else
        each server in turn until one knows the handle.

        Raises:
            NoResult: no server keeps a result of that handle (or it expired).
            JobTimeout: the job has not ended within ``timeout``; it keeps running.
            JobException, JobFailed, JobCancelled: how the job ended.
            NoServersAvailable: no server could be asked.
            ServerError: the server does not keep results (gearmand).
        """
        return await self._result(to_bytes(handle), timeout, server=server, codec=codec)

    async def result_status(
        self, handle: Payload, *, timeout: float | None = 0, server: ServerSpec | None = None
    ) -> JobResult | None:
        """What the server says of a background job's result, without raising for
        how it ended: a :class:`~geartrain.JobResult`, or None where nothing is
        kept.  ``timeout`` as for :meth:`result` (here 0 by default: ask once)."""
        key = to_bytes(handle)
        links = self._status_order(self._handles.get(key), server)
        failures: list[str] = []
        for link in links:
            try:
                # A server that does not hold the job answers at once.
                answer = await self._ask_result(link, key, timeout)
            except ConnectionLost as exc:
                failures.append(str(exc))
                continue
            finally:
                self._drop_temporary(link)
            if answer is not None:
                return answer
        if len(failures) == len(links):
            raise NoServersAvailable("no server answered: " + "; ".join(failures))
        return None

    async def _result(
        self,
        handle: bytes,
        timeout: float | None,
        *,
        server: ServerSpec | None = None,
        codec: Codec | None = None,
    ) -> Any:
        answer = await self.result_status(handle, timeout=timeout, server=server)
        return outcome(handle, answer, codec)

    async def _ask_result(
        self, link: ServerLink, handle: bytes, timeout: float | None
    ) -> JobResult | None:
        """Ask one server on a connection of its own (a wait holds up its answers)."""
        conn = await Connection.open(
            link.address,
            connect_timeout=self.connect_timeout,
            ssl=self.ssl,
            io_timeout=self.io_timeout,
        )
        try:
            return await ask_result(conn, handle, timeout, self.io_timeout)
        finally:
            conn.close()

    async def echo(self, data: Payload = b"ping", *, server: ServerSpec | None = None) -> bytes:
        """Send ECHO_REQ to a server (the first one by default) and return the echo."""
        link = self._status_order(None, server)[0]
        try:
            reply = await link.request(T.ECHO_REQ, to_bytes(data))
        finally:
            self._drop_temporary(link)
        return reply.args[0] if reply.args else b""

    def _drop_temporary(self, link: ServerLink) -> None:
        # A link made for a server= outside the client's list is not kept.
        if link not in self.links:
            link.close()


def _checked(retry: Retry | None) -> Retry | None:
    if retry is not None and not isinstance(retry, Retry):
        raise TypeError(f"retry must be a geartrain.Retry, not {type(retry).__name__}")
    return retry


def _error_args(packet: Packet) -> tuple[str, str]:
    code = packet.args[0].decode(errors="replace") if packet.args else "UNKNOWN"
    text = packet.args[1].decode(errors="replace") if len(packet.args) > 1 else ""
    return code, text


def _epoch(when: When) -> int:
    if isinstance(when, datetime):
        return int(when.timestamp())
    return int(when)


def _keep(keep_result: Duration) -> float:
    """Seconds to keep a result; a bad value fails here, before anything is sent."""
    try:
        keep = parse_duration(keep_result)
        keep_result_option(keep)
    except ValueError as error:
        raise ValueError(f"keep_result: {error}") from None
    return keep
