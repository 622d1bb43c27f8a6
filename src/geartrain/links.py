"""One server as the client reaches it: its connection, opened when needed, the
jobs waiting on it, and when it counts as down (a backoff after each failure).
Which server a request goes to is the client's business (:mod:`.client`)."""

from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
from collections.abc import Callable
from typing import Protocol

from . import extensions
from .client_job import Job, parse_status
from .connection import Address, Backoff, Connection
from .errors import ConnectionLost, ServerError
from .extensions import KEEP_NO_RESULT
from .protocol import Packet, PacketType
from .retry import OPTION, Retry, option

__all__ = ["AnswerClock", "LinkOwner", "ServerLink"]

log = logging.getLogger("geartrain.client")

T = PacketType


class LinkOwner(Protocol):
    """What a link reads of its client."""

    max_backoff: float
    io_timeout: float | None
    connect_timeout: float | None
    ssl: _ssl.SSLContext | None
    exceptions: bool
    client_id: bytes
    closing: bool

    def job_lost(self, job: Job, link: ServerLink) -> None:
        """The job's server dropped the connection after JOB_CREATED."""


class AnswerClock:
    """How long a call may still wait for one server's answers: ``io_timeout``
    in all, counted from the first packet the call sends it."""

    __slots__ = ("limit", "deadline")

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.deadline: float | None = None

    def left(self) -> float | None:
        """Seconds left, never below 0 (None: no limit); the first call starts the clock."""
        if self.limit is None:
            return None
        now = asyncio.get_running_loop().time()
        if self.deadline is None:
            self.deadline = now + self.limit
        return max(0.0, self.deadline - now)


class ServerLink:
    """The client's state for one server: its connection and the jobs on it."""

    def __init__(self, client: LinkOwner, address: Address) -> None:
        self.client = client
        self.address = address
        self.conn: Connection | None = None
        self.jobs: dict[bytes, list[Job]] = {}
        self.down_until = 0.0
        self.backoff = Backoff(0.1, client.max_backoff)
        self._lock = asyncio.Lock()
        # The connection whose server was asked which extensions it takes, and
        # its answers (an extension's probing option: taken or not).
        self._takes: tuple[Connection, dict[bytes, bool]] | None = None

    def is_down(self, now: float) -> bool:
        return self.down_until > now

    def mark_down(self) -> None:
        delay = self.backoff.next()
        self.down_until = asyncio.get_running_loop().time() + delay
        log.info("server %s marked down for %.2fs", self.address, delay)

    async def request(
        self,
        packet_type: PacketType,
        *args: bytes,
        on_reply: Callable[[Packet], None] | None = None,
        retry: Retry | None = None,
        keep_result: float = 0.0,
    ) -> Packet:
        """Send a request on this server's connection (opened if needed); return the reply.

        ``retry`` is a submission's retry policy: sent just ahead of it, where
        the server takes the retries extension.  ``keep_result`` (seconds) asks
        geartrain to keep the result of this background job: the
        ``keep_result=`` option is set for it alone.

        The server has ``io_timeout`` in all to answer, counted from the first
        packet sent: a new connection's handshake and the retry below wait
        within it, so a stopped server (whose kernel still accepts
        connections) costs one io_timeout.

        Raises:
            ConnectionLost: the server could not be reached, dropped the
                connection or did not answer in time; it is then marked down
                for a while.
        """
        wait = AnswerClock(self.client.io_timeout)
        for attempt in (1, 2):
            conn, fresh = await self.connection(wait)
            try:
                # Ask what the server takes first: nothing may be sent between
                # an option for this job and the job.
                with_retry = retry is not None and await self._takes_retries(conn, wait)
                options = None
                if keep_result:
                    await self._check_keeps_results(conn, wait)
                    options = (extensions.keep_result(keep_result), KEEP_NO_RESULT)
                if with_retry:
                    assert retry is not None
                    answer = conn.ask(T.OPTION_REQ, option(retry))
                    answer.add_done_callback(self._retry_refused)
                return await conn.request(
                    packet_type, *args, on_reply=on_reply, timeout=wait.left(), options=options
                )
            except ConnectionLost:
                # An idle connection the server closed (say, it restarted)
                # may not have been noticed yet: try once on a new one.
                if fresh or attempt == 2 or wait.left() == 0:
                    if not self.is_down(asyncio.get_running_loop().time()):
                        self.mark_down()
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _server_takes(self, conn: Connection, probe: bytes, wait: AnswerClock) -> bool:
        """Whether the server on ``conn`` takes the option ``probe`` (an extension's
        harmless option; gearmand answers UNKNOWN_OPTION): asked once per connection."""
        if self._takes is None or self._takes[0] is not conn:
            self._takes = (conn, {})
        answers = self._takes[1]
        if probe not in answers:
            reply = await conn.request(T.OPTION_REQ, probe, timeout=wait.left())
            answers[probe] = reply.type is T.OPTION_RES
        return answers[probe]

    async def _takes_retries(self, conn: Connection, wait: AnswerClock) -> bool:
        """Whether the server takes retry policies (it is said once if not)."""
        asked = self._takes is not None and OPTION in self._takes[1]
        takes = await self._server_takes(conn, OPTION, wait)
        if not takes and not asked:
            log.warning(
                "%s does not take retry policies (geartrain's retries extension): "
                "jobs submitted there with one run without it",
                self.address,
            )
        return takes

    def _retry_refused(self, answer: asyncio.Future[Packet]) -> None:
        if answer.cancelled() or answer.exception() is not None:
            return
        if answer.result().type is T.ERROR:
            log.warning("%s refused a retry policy: %r", self.address, answer.result().args)

    async def _check_keeps_results(self, conn: Connection, wait: AnswerClock) -> None:
        """Raise ServerError unless the server takes the ``keep_result=`` option."""
        if not await self._server_takes(conn, KEEP_NO_RESULT, wait):
            raise ServerError(
                "UNKNOWN_OPTION",
                f"{self.address} does not keep results of background jobs"
                " (no keep_result option: not a geartrain server?)",
            )

    async def connection(self, wait: AnswerClock) -> tuple[Connection, bool]:
        """The open connection, and whether it was opened just now.

        A caller that waited while another one failed to connect does not try
        again: the server was found down just now.
        """
        conn = self.conn
        if conn is not None and not conn.closed:
            return conn, False
        down_until = self.down_until
        async with self._lock:
            if self.conn is not None and not self.conn.closed:
                return self.conn, False
            if self.down_until != down_until:
                raise ConnectionLost(f"connection to {self.address} failed just now")
            try:
                conn = await self._open(wait)
            except ConnectionLost:
                self.mark_down()
                raise
            self.conn = conn
            self.down_until = 0.0
            self.backoff.reset()
            return conn, True

    def close(self) -> Connection | None:
        """Close the connection; return it, to wait for with ``wait_closed``."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        return conn

    async def _open(self, wait: AnswerClock) -> Connection:
        client = self.client
        conn = await Connection.open(
            self.address,
            connect_timeout=client.connect_timeout,
            ssl=client.ssl,
            on_packet=self._on_packet,
            on_close=self._on_close,
            io_timeout=client.io_timeout,
        )
        try:
            if client.exceptions:
                # Without it gearmand turns WORK_EXCEPTION into WORK_FAIL.  An
                # old server answers ERROR UNKNOWN_OPTION: fine, we get FAILs.
                reply = await conn.request(T.OPTION_REQ, b"exceptions", timeout=wait.left())
                if reply.type is T.ERROR:
                    log.info("%s does not support the exceptions option", self.address)
            if client.client_id:
                conn.send(T.SET_CLIENT_ID, client.client_id)
        except ConnectionLost:
            conn.close()
            raise
        return conn

    def _on_packet(self, packet: Packet) -> None:
        handle = packet.args[0] if packet.args else b""
        if packet.type is T.WORK_FAIL:
            # gearmand sends "H\0" for an exception converted to a failure.
            handle = handle.removesuffix(b"\0")
        jobs = self.jobs.get(handle)
        if not jobs:
            log.debug("%s: %s for unknown handle %r", self.address, packet.type.name, handle)
            return
        if packet.type in (T.WORK_COMPLETE, T.WORK_FAIL, T.WORK_EXCEPTION):
            del self.jobs[handle]
        for job in list(jobs):
            job._on_work(packet)

    def _on_close(self, conn: Connection) -> None:
        if conn is not self.conn:
            return
        self.conn = None
        jobs = [job for group in self.jobs.values() for job in group]
        self.jobs.clear()
        if self.client.closing:
            return
        if jobs:
            self.mark_down()
        for job in jobs:
            self.client.job_lost(job, self)

    async def withdraw(self, handle: bytes, unique: bytes) -> bool:
        """Cancel a job nobody here waits for any more (``cancel job`` on this connection).

        Skipped while another job of this client shares the handle, or, for a
        job with a unique key, while other clients wait for it too (coalesced
        submissions share one job).  True if the server dropped the job.
        """
        conn = self.conn
        if conn is None or conn.closed or handle in self.jobs:
            return False
        try:
            if unique:
                status = parse_status(await conn.request(T.GET_STATUS_UNIQUE, unique))
                if status.known and (status.clients or 0) > 1:
                    return False
            answer = await conn.text(b"cancel job " + handle, listing=False)
        except ConnectionLost:
            return False
        log.debug("%s: cancel job %r: %r", self.address, handle, answer)
        return answer.startswith(b"OK")

    def forget(self, job: Job) -> None:
        if job.handle is None:
            return
        group = self.jobs.get(job.handle)
        if group and job in group:
            group.remove(job)
            if not group:
                del self.jobs[job.handle]
