"""Client-side connections to job servers.

Everything the client, worker and admin libraries share about talking to one
server lives here: parsing server addresses, connecting with a timeout,
framing with :mod:`geartrain.protocol`, matching replies to requests, write
flow control, and the reconnect backoff.  Policy (which server, when to retry)
lives in the callers.

Replies are matched to requests by order.  Gearman has no request ids, but a
server answers the requests of one connection in the order they were sent:
SUBMIT_JOB* with JOB_CREATED (or ERROR), GET_STATUS with STATUS_RES, ECHO_REQ
with ECHO_RES, GRAB_JOB* with JOB_ASSIGN* or NO_JOB, a text command with its
text answer.  Everything else (WORK_* for a client, NOOP for a worker, and a
worker's ERROR JOB_NOT_FOUND for a late result) is unsolicited and goes to the
connection's ``on_packet`` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl as _ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from .address import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_IO_TIMEOUT,
    DEFAULT_PORT,
    Address,
    ServerSpec,
    parse_address,
    parse_servers,
)
from .admin_answers import answer_end
from .errors import ConnectionLost, ProtocolError
from .protocol import (
    DEFAULT_MAX_PACKET_SIZE,
    REQ,
    AdminLine,
    Decoder,
    Packet,
    PacketType,
    pack,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_IO_TIMEOUT",
    "DEFAULT_PORT",
    "Address",
    "Backoff",
    "Connection",
    "ServerSpec",
    "parse_address",
    "parse_servers",
]

log = logging.getLogger("geartrain.connection")

# Packets that answer a request; anything else is unsolicited.
_REPLIES = frozenset(
    {
        PacketType.JOB_CREATED,
        PacketType.STATUS_RES,
        PacketType.STATUS_RES_UNIQUE,
        PacketType.ECHO_RES,
        PacketType.OPTION_RES,
        PacketType.NO_JOB,
        PacketType.JOB_ASSIGN,
        PacketType.JOB_ASSIGN_UNIQ,
        PacketType.JOB_ASSIGN_ALL,
        PacketType.ERROR,
    }
)


class Backoff:
    """Reconnect delays with jitter that grow only while a server stays down.

    Delays double from ``initial`` up to ``maximum``, but never exceed a
    quarter of the time since the first failure: a server that restarts in a
    second is found again within about a second, one that stays down is
    retried less and less often.  Each delay is drawn from the upper half of
    its range, so peers that lost the same server spread out instead of
    reconnecting in lockstep, yet never retry in a busy loop.
    """

    def __init__(self, initial: float = 0.1, maximum: float = 30.0, factor: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self._attempt = 0
        self._since = 0.0

    def next(self) -> float:
        """The delay before the next attempt."""
        now = time.monotonic()
        if self._attempt == 0:
            self._since = now
        outage = max(self.initial, (now - self._since) / 4)
        ceiling = min(self.maximum, self.initial * self.factor**self._attempt, outage)
        self._attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Call after a success: the next failure waits ``initial`` again."""
        self._attempt = 0


class _Pending:
    """A request waiting for its reply: one packet, or a raw text answer."""

    __slots__ = ("future", "on_reply", "listing", "buffer")

    def __init__(
        self,
        future: asyncio.Future[Any],
        on_reply: Callable[[Packet], None] | None = None,
        listing: bool | None = None,
    ) -> None:
        self.future = future
        self.on_reply = on_reply
        self.listing = listing  # None: a binary reply; else a text answer
        self.buffer = bytearray()

    def feed_text(self, data: bytes) -> int:
        """Take bytes of a text answer; return how many were used, or -1 for all."""
        start = len(self.buffer)
        self.buffer += data
        buf = self.buffer
        end = answer_end(buf, bool(self.listing))
        if end < 0:
            return -1
        del buf[end:]
        if not self.future.done():
            self.future.set_result(bytes(buf))
        return end - start


class Connection(asyncio.Protocol):
    """One TCP connection to a job server.

    Open it with :meth:`open`.  :meth:`send` writes a packet;
    :meth:`request` writes one and waits for its reply; :meth:`text` sends an
    admin command and returns its raw answer.  When the connection closes, for
    any reason, every waiting request fails with
    :class:`~geartrain.errors.ConnectionLost` and ``on_close`` is called once.

    Args:
        address: the server.
        on_packet: called with every unsolicited packet (WORK_*, NOOP, ...).
        on_close: called once when the connection is closed or lost.
        io_timeout: the default time to wait for a reply or for a full write
            buffer to drain.
        unsolicited_errors: ERROR codes that never answer a request on this
            connection.  A worker passes ``JOB_NOT_FOUND`` and friends: those
            answer a WORK_* packet, which has no reply otherwise.
    """

    def __init__(
        self,
        address: Address,
        *,
        on_packet: Callable[[Packet], None] | None = None,
        on_close: Callable[[Connection], None] | None = None,
        io_timeout: float | None = DEFAULT_IO_TIMEOUT,
        unsolicited_errors: frozenset[bytes] = frozenset(),
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
    ) -> None:
        self.address = address
        self.on_packet = on_packet
        self.on_close = on_close
        self.io_timeout = io_timeout
        self.unsolicited_errors = unsolicited_errors
        self._decoder = Decoder(max_packet_size=max_packet_size)
        self._transport: asyncio.Transport | None = None
        self._pending: deque[_Pending] = deque()
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self._close_reason: BaseException | None = None
        loop = asyncio.get_running_loop()
        self.closed_future: asyncio.Future[None] = loop.create_future()
        """Done once the connection has closed."""
        # Done once the transport has let go of its socket (after TLS's closing
        # handshake, later than close()): what wait_closed() also waits for.
        self._released: asyncio.Future[None] = loop.create_future()

    # -- opening and closing -------------------------------------------------

    @classmethod
    async def open(
        cls,
        address: Address,
        *,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        ssl: _ssl.SSLContext | None = None,
        **kwargs: Any,
    ) -> Connection:
        """Connect to ``address``.

        Raises:
            ConnectionLost: the connection was refused, the host did not
                resolve, or it did not answer within ``connect_timeout``.
        """
        loop = asyncio.get_running_loop()
        conn = cls(address, **kwargs)
        try:
            async with asyncio.timeout(connect_timeout):
                await loop.create_connection(
                    lambda: conn,
                    address.host,
                    address.port,
                    ssl=ssl,
                    server_hostname=address.host if ssl else None,
                )
        except TimeoutError:
            raise ConnectionLost(
                f"connect to {address} timed out after {connect_timeout}s"
            ) from None
        except OSError as exc:
            raise ConnectionLost(f"connect to {address} failed: {_describe(exc)}") from exc
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # asyncio sets TCP_NODELAY already; keepalive finds peers that
            # vanished without a FIN (a pulled cable, a NAT that forgot us).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._released.done():
            self._released.set_result(None)
        self._shutdown(exc or ConnectionLost(f"{self.address} closed the connection"))

    @property
    def closed(self) -> bool:
        """True once the connection is closed or lost."""
        return self._closed

    def close(self, reason: BaseException | None = None) -> None:
        """Close the connection; waiting requests fail with ConnectionLost."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        self._shutdown(reason or ConnectionLost(f"connection to {self.address} closed"))

    def abort(self, reason: BaseException) -> None:
        """Drop the connection at once, discarding unsent data."""
        if self._transport is not None:
            self._transport.abort()
        self._shutdown(reason)

    async def wait_closed(self, timeout: float = 2.0) -> None:
        """Wait until the connection is closed and its socket released (a TLS
        peer that never answers the closing handshake is waited for ``timeout``)."""
        await asyncio.shield(self.closed_future)
        if self._transport is not None and not self._released.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._released), timeout)

    def _shutdown(self, reason: BaseException) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        lost = reason if isinstance(reason, ConnectionLost) else _lost(self.address, reason)
        pending, self._pending = self._pending, deque()
        for item in pending:
            if not item.future.done():
                item.future.set_exception(lost)
                item.future.exception()  # a cancelled waiter must not warn
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(lost)
                waiter.exception()
        self._drain_waiters.clear()
        if not self.closed_future.done():
            self.closed_future.set_result(None)
        if self.on_close is not None:
            try:
                self.on_close(self)
            except Exception:  # pragma: no cover - a bug in a callback
                log.exception("on_close callback failed")

    # -- writing ---------------------------------------------------------------

    def send(self, packet_type: PacketType, *args: bytes) -> None:
        """Write one request packet.

        Raises:
            ConnectionLost: the connection is closed.
        """
        self.write(pack(REQ, packet_type, args))

    def write(self, data: bytes) -> None:
        """Write raw bytes (packets or an admin line)."""
        if self._closed or self._transport is None:
            raise self._lost_error()
        self._transport.write(data)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until the write buffer is below its high-water mark."""
        if self._closed:
            raise self._lost_error()
        if not self._paused:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        limit = self.io_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                await waiter
        except TimeoutError:
            self.abort(ConnectionLost(f"{self.address}: write stalled for {limit}s"))
            raise self._lost_error() from None

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- requests ----------------------------------------------------------------

    async def request(
        self,
        packet_type: PacketType,
        *args: bytes,
        on_reply: Callable[[Packet], None] | None = None,
        timeout: float | None = None,
        options: tuple[bytes, bytes] | None = None,
    ) -> Packet:
        """Send a request and return its reply packet (which may be ERROR).

        ``options`` are two OPTION_REQs written just before the request and just
        after it, with nothing between (one sets a connection's option for this
        request, the other sets it back); their answers are read and dropped.

        ``on_reply`` runs synchronously as the reply is decoded, before any
        later packet is handled: a submitter uses it to register the job
        handle before that job's WORK_* packets can arrive.

        Raises:
            ConnectionLost: the connection closed, or no reply came within
                ``timeout`` (default ``io_timeout``); the connection is then
                dropped, since a late reply would match the wrong request.
        """
        if options is not None:
            self._option(options[0])
        future = self.ask(packet_type, *args, on_reply=on_reply)
        if options is not None:
            self._option(options[1])
        if self._paused:  # a big payload: let the kernel take it before waiting on
            await self.drain(timeout)
        packet: Packet = await self._wait(future, timeout, packet_type.name)
        return packet

    def ask(
        self,
        packet_type: PacketType,
        *args: bytes,
        on_reply: Callable[[Packet], None] | None = None,
    ) -> asyncio.Future[Packet]:
        """Send a request now and return the future of its reply, without waiting:
        what is sent next goes after it on the wire, so a request that must
        precede another (an option for the next submission) is sent with this.

        Raises:
            ConnectionLost: the connection is closed.
        """
        future: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
        self.send(packet_type, *args)
        self._pending.append(_Pending(future, on_reply))
        return future

    def _option(self, option: bytes) -> None:
        future: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_ignore)
        self.send(PacketType.OPTION_REQ, option)
        self._pending.append(_Pending(future))

    async def text(
        self, command: str | bytes, *, listing: bool, timeout: float | None = None
    ) -> bytes:
        """Send one admin command line and return the raw answer, line endings included.

        ``listing`` says the answer is a list ended by a ``.`` line.
        """
        line = command.encode() if isinstance(command, str) else command
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.write(line + b"\r\n")
        self._pending.append(_Pending(future, listing=listing))
        answer: bytes = await self._wait(future, timeout, repr(line.decode(errors="replace")))
        return answer

    async def _wait(self, future: asyncio.Future[Any], timeout: float | None, what: str) -> Any:
        limit = self.io_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError:
            if future.done() and not future.cancelled():
                return future.result()
            self.abort(ConnectionLost(f"{self.address}: no answer to {what} within {limit}s"))
            raise self._lost_error() from None

    def _lost_error(self) -> ConnectionLost:
        reason = self._close_reason
        if isinstance(reason, ConnectionLost):
            return reason
        return _lost(self.address, reason)

    # -- reading -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # A text answer is taken raw (line endings matter to gearadmin's
        # users); binary packets go through the decoder.  A client may send a
        # text command (``cancel job``) between packets: packets that arrive
        # first go to the decoder, which then hands on the text line.
        while data and self._text_next() and not (self._decoder.buffered or data[0] == 0):
            used = self._pending[0].feed_text(data)
            if used < 0:
                return
            self._pending.popleft()
            data = data[used:]
        if not data:
            return
        self._decoder.feed(data)
        try:
            while True:
                event = self._decoder.next_event()
                if event is None:
                    return
                if isinstance(event, AdminLine):
                    if self._text_next():
                        if self._pending[0].feed_text(event.line + b"\n") >= 0:
                            self._pending.popleft()
                    else:
                        log.debug("%s: unexpected text line %r", self.address, event.line)
                    continue
                self._dispatch(event)
                if self._closed:
                    return
        except ProtocolError as exc:
            log.warning("%s sent garbage (%s); closing", self.address, exc)
            self.abort(ConnectionLost(f"{self.address}: protocol error: {exc}"))

    def _text_next(self) -> bool:
        """The next answer due is a text one."""
        return bool(self._pending) and self._pending[0].listing is not None

    def _dispatch(self, packet: Packet) -> None:
        if packet.type in _REPLIES and self._pending and not self._is_unsolicited(packet):
            item = self._pending.popleft()
            if item.on_reply is not None:
                try:
                    item.on_reply(packet)
                except Exception:  # pragma: no cover - a bug in a callback
                    log.exception("reply callback failed")
            if not item.future.done():
                item.future.set_result(packet)
            return
        if self.on_packet is not None:
            self.on_packet(packet)
        else:
            log.debug("%s: unsolicited %s ignored", self.address, packet.type.name)

    def _is_unsolicited(self, packet: Packet) -> bool:
        if packet.type is not PacketType.ERROR:
            return False
        return packet.args[0] in self.unsolicited_errors if packet.args else False


def _lost(address: Address, reason: BaseException | None) -> ConnectionLost:
    if reason is None:
        return ConnectionLost(f"connection to {address} lost")
    if isinstance(reason, ConnectionLost):
        return reason
    return ConnectionLost(f"connection to {address} lost: {_describe(reason)}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _ignore(future: asyncio.Future[Any]) -> None:
    """Read an answer nobody waits for (a lost connection's error included)."""
    if not future.cancelled():
        future.exception()
