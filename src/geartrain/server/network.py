"""The server's I/O: asyncio protocols between sockets and the core.

This layer decides nothing.  It decodes bytes into packets and admin lines,
hands them to the core, and writes what the core sends.  Writes are gathered
per connection and flushed once per event-loop turn, so a burst of replies and
forwarded results costs one system call per connection rather than one per
packet.  A connection whose peer stops reading is paused for reading until its
output drains (explicit flow control), and dropped once its queued output passes
``max_output_bytes``, so one slow peer cannot make the server buffer without
bound.  At most :data:`~.limits.EVENTS_PER_TURN` packets are handled from one
connection per loop turn, so a flooding peer cannot hold up the others.  The
other limits of :mod:`.limits` that concern connections are checked here too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any, cast

from ..errors import ProtocolError
from ..protocol import Decoder, Parts
from ..readable import waiting
from .access import certificate_names
from .admin import AdminCommands
from .busy_poll import BusyPoll
from .flags import ServerConfig
from .limits import EVENTS_PER_TURN, LimitEpisode, default_max_connections
from .logs import LogThrottle
from .model import Peer
from .replies import error_packet
from .reply_order import answer_later
from .requests import Requests

__all__ = ["Connection", "Network", "is_loopback"]

log = logging.getLogger("geartrain.server.network")

# TCP_KEEPIDLE and friends are Linux names; macOS has TCP_KEEPALIVE for idle.
_KEEPALIVE_OPTIONS = (
    ("keepalive_idle", getattr(socket, "TCP_KEEPIDLE", None)),
    ("keepalive_interval", getattr(socket, "TCP_KEEPINTVL", None)),
    ("keepalive_count", getattr(socket, "TCP_KEEPCNT", None)),
)


class Network:
    """Shared state of all connections: the core, the admin commands, the flush list."""

    def __init__(self, requests: Requests, admin: AdminCommands, config: ServerConfig) -> None:
        self.requests = requests
        self.core = requests.core
        self.admin = admin
        self.answering: set[asyncio.Task[Any]] = set()  # admin answers waiting for a store
        self.config = config
        self.connections: set[Connection] = set()
        self._dirty: list[Connection] = []
        self._before_flush: list[Callable[[], None]] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.busy_poll = BusyPoll(config.busy_poll_us)
        self.max_connections = config.max_connections or default_max_connections()
        self.input_bytes = 0  # received and not yet handled, across connections
        self.reads = 0  # reads so far, for the idle memory trimmer
        self._limit_connections = LimitEpisode(
            "Connection limit (%d) reached: refusing new connections"
        )
        self._limit_input = LimitEpisode(
            "Input buffer limit (%d bytes across connections) reached: "
            "closing the connection holding the most (%s, %d bytes)"
        )
        self._limit_output = LimitEpisode(
            "Output limit (%d bytes) reached for %s, which does not read: closing it"
        )
        self.protocol_errors = LogThrottle()

    def protocol_factory(self) -> Connection:
        return Connection(self)

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self.flush)

    def mark_dirty(self, conn: Connection) -> None:
        if not self._dirty:
            self._schedule()
        self._dirty.append(conn)

    def before_flush(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` at the end of this loop turn, just before the replies are
        written, so that what it sends leaves in the same write (the store's append:
        its acknowledgements cost no extra loop turn)."""
        self._schedule()
        self._before_flush.append(callback)

    def flush(self) -> None:
        """Write out everything the core queued during this loop turn."""
        while self._before_flush:
            callbacks, self._before_flush = self._before_flush, []
            for callback in callbacks:
                callback()
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()
        self.busy_poll.worked()

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()

    def release_idle_buffers(self) -> int:
        """Give back the receive buffers of connections with nothing pending."""
        return sum(conn.decoder.release() for conn in self.connections)

    def admit(self, conn: Connection) -> bool:
        """A new connection: False if the connection limit says no."""
        if len(self.connections) < self.max_connections:
            self.connections.add(conn)
            return True
        self.core.stats.limit_connections += 1
        self._limit_connections.reached(self.max_connections)
        return False

    def input_grew(self, by: int) -> None:
        self.input_bytes += by
        if by > 0 and self.input_bytes > self.config.max_input_bytes:
            greedy = max(self.connections, key=lambda c: c.held)
            self.core.stats.limit_input += 1
            self._limit_input.reached(self.config.max_input_bytes, greedy.host, greedy.held)
            greedy.abort()

    def output_exceeded(self, conn: Connection) -> None:
        self.core.stats.limit_output += 1
        self._limit_output.reached(self.config.max_output_bytes, conn.host)
        conn.abort()


class Connection(asyncio.BufferedProtocol):
    """One client, worker or admin connection.

    A buffered protocol: the transport reads straight into the decoder's
    buffer, so a large packet is received in place."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.core = network.core
        config = network.config
        self.decoder = Decoder(
            max_packet_size=config.max_packet_size, max_line_size=config.max_line_size
        )
        # The transport reads straight into the decoder's buffer.
        self.get_buffer = self.decoder.get_buffer  # type: ignore[method-assign]
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.host = "-"
        self.held = 0  # input counted in network.input_bytes
        self._out: list[bytes] = []
        self._closing = False
        self._write_paused = False
        self._backlog = False  # events left in the buffer for a later loop turn

    # -- asyncio callbacks ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        if not self.network.admit(self):
            self._closing = True
            self.transport.abort()
            return
        sock = transport.get_extra_info("socket")
        peername = transport.get_extra_info("peername")
        host = self.host = str(peername[0]) if isinstance(peername, tuple) else "-"
        fd = -1
        if sock is not None:
            fd = sock.fileno()
            self._tune_socket(sock)
            self.decoder.waiting = waiting(fd)
        self.peer = Peer(self.write, self.close, host, fd, is_loopback(host))
        self.peer.names = certificate_names(transport.get_extra_info("peercert"))
        self.core.connect(self.peer)

    def buffer_updated(self, nbytes: int) -> None:
        self.decoder.buffer_updated(nbytes)
        self.network.reads += 1
        self._handle_events()

    def _handle_events(self) -> None:
        """Handle what has arrived, up to EVENTS_PER_TURN events; the rest waits
        for a later loop turn, with reading paused meanwhile."""
        decoder = self.decoder
        request = self.network.requests.parts
        peer = self.peer
        budget = EVENTS_PER_TURN
        try:
            while not self._closing and peer is not None:
                if not budget:
                    self._defer()
                    break
                event = decoder.next_parts()
                if event is None:
                    break
                budget -= 1
                if type(event) is tuple:  # a packet's parts, not an AdminLine
                    magic, ptype, args = cast(Parts, event)
                    request(peer, magic, ptype, args)
                else:
                    reply = self.network.admin.line(peer, event[0])
                    if reply is None:
                        self.close()
                        break
                    if isinstance(reply, bytes):
                        peer.send(reply)
                    else:  # the answer comes once a store has answered, in order
                        answer_later(peer, reply, _admin_error, self.network.answering)
        except ProtocolError as error:
            if self.network.protocol_errors.due(self.host):  # a fuzzer makes thousands
                log.info("Closing %s: %s", self.host, error)
            self.write(error_packet(error.code.encode(), error.text.encode()))
            self.close()
        held = decoder.buffered
        if held != self.held:
            grown, self.held = held - self.held, held
            self.network.input_grew(grown)

    def _defer(self) -> None:
        if not self._backlog and self.transport is not None:
            self._backlog = True
            self.transport.pause_reading()
            asyncio.get_running_loop().call_soon(self._continue)

    def _continue(self) -> None:
        self._backlog = False
        self._handle_events()
        if not self._backlog and not self._write_paused and not self._closing:
            assert self.transport is not None
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.network.connections.discard(self)
        self._closing = True
        self._out.clear()
        self._drop_input()
        if self.peer is not None:
            self.core.disconnect(self.peer)
            # The peer's send and close are bound to this connection: break the
            # cycle so both go at once, not at the next cyclic collection.
            self.peer = None

    def pause_writing(self) -> None:
        # The peer is not reading what we send: stop reading what it sends.
        self._write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.transport is not None and not self._closing and not self._backlog:
            self.transport.resume_reading()

    # -- output ------------------------------------------------------------

    def write(self, data: bytes | list[bytes]) -> None:
        if self._closing:
            return
        if not self._out:
            self.network.mark_dirty(self)
        if isinstance(data, bytes):
            self._out.append(data)
        else:
            self._out += data  # the pieces of a large packet, written as they are

    def flush(self) -> None:
        out = self._out
        if not out or self.transport is None:
            return
        if len(out) == 1:
            self.transport.write(out[0])
        else:
            self.transport.writelines(out)  # uvloop: one writev, no joined copy
        out.clear()
        if (
            self._write_paused
            and self.transport.get_write_buffer_size() > self.network.config.max_output_bytes
        ):
            self.network.output_exceeded(self)

    def abort(self) -> None:
        """Drop the connection now, without sending what is queued (a limit)."""
        if self._closing or self.transport is None:
            return
        self._closing = True
        self._out.clear()
        self._drop_input()
        self.transport.abort()

    def _drop_input(self) -> None:
        # At once, not at connection_lost: the input limit must see it gone.
        if self.held:
            self.network.input_grew(-self.held)
            self.held = 0
        self.decoder.release(force=True)

    def close(self) -> None:
        """Close after sending what is queued (the core's silent close, a shutdown)."""
        if self._closing or self.transport is None:
            return
        self.flush()
        self._closing = True
        self.transport.close()

    def _tune_socket(self, sock: Any) -> None:
        config = self.network.config
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if config.keepalive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                for name, option in _KEEPALIVE_OPTIONS:
                    value = getattr(config, name)
                    if option is not None and value > 0:
                        sock.setsockopt(socket.IPPROTO_TCP, option, value)
        except OSError:  # not a TCP socket (tests over socketpair, Unix sockets)
            pass


def _admin_error(error: Exception) -> bytes:
    return b"ERR QUEUE_ERROR " + str(error).encode(errors="replace")[:200] + b"\r\n"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False
