"""The server's I/O: asyncio protocols between sockets and the core.

This layer decides nothing.  It decodes bytes into packets and admin lines,
hands them to the core, and writes what the core sends.  Writes are gathered
per connection and flushed once per event-loop turn, so a burst of replies and
forwarded results costs one system call per connection rather than one per
packet.  A connection whose peer stops reading is paused for reading until its
output drains (explicit flow control), so one slow peer cannot make the server
buffer without bound.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import Any, cast

from ..errors import ProtocolError
from ..protocol import Decoder, Packet
from .access import certificate_names
from .admin import AdminCommands
from .config import ServerConfig
from .core import JobServer
from .jobs import Peer
from .replies import error_packet

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

    def __init__(self, core: JobServer, admin: AdminCommands, config: ServerConfig) -> None:
        self.core = core
        self.admin = admin
        self.config = config
        self.connections: set[Connection] = set()
        self._dirty: list[Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def protocol_factory(self) -> Connection:
        return Connection(self)

    def mark_dirty(self, conn: Connection) -> None:
        if not self._dirty:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self.flush)
        self._dirty.append(conn)

    def flush(self) -> None:
        """Write out everything the core queued during this loop turn."""
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()


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
        self._out: list[bytes] = []
        self._closing = False

    # -- asyncio callbacks ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        peername = transport.get_extra_info("peername")
        host = str(peername[0]) if isinstance(peername, tuple) else "-"
        fd = -1
        if sock is not None:
            fd = sock.fileno()
            self._tune_socket(sock)
        self.peer = Peer(self.write, self.close, host, fd, is_loopback(host))
        self.peer.names = certificate_names(transport.get_extra_info("peercert"))
        self.network.connections.add(self)
        self.core.connect(self.peer)

    def buffer_updated(self, nbytes: int) -> None:
        decoder = self.decoder
        decoder.buffer_updated(nbytes)
        core_packet = self.core.packet
        peer = self.peer
        assert peer is not None
        try:
            while not self._closing:
                event = decoder.next_event()
                if event is None:
                    return
                if type(event) is Packet:
                    core_packet(peer, event)
                else:
                    reply = self.network.admin.line(peer, event[0])
                    if reply is None:
                        self.close()
                        return
                    self.write(reply)
        except ProtocolError as error:
            log.info("Closing %s: %s", peer.host, error)
            self.write(error_packet(error.code.encode(), error.text.encode()))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.network.connections.discard(self)
        self._closing = True
        self._out.clear()
        if self.peer is not None:
            self.core.disconnect(self.peer)

    def pause_writing(self) -> None:
        # The peer is not reading what we send: stop reading what it sends.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self._closing:
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


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False
