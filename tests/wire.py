"""The tests' one blocking raw client: packets (geartrain.protocol's codec) and admin
lines on a real connection, plain or TLS, with timeouts.  Everything in tests/ that
speaks the Gearman wire by hand goes through it."""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections import deque

from geartrain.admin_answers import answer_end, is_listing
from geartrain.protocol import REQ, Decoder, Packet, PacketType, pack

T = PacketType
HOST = "127.0.0.1"


def insecure_context() -> ssl.SSLContext:
    """TLS without certificate checks: the test servers' certificates are self-signed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Wire:
    """One connection to a job server, speaking raw packets and admin lines."""

    def __init__(
        self,
        port: int,
        host: str = HOST,
        timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self.timeout = timeout
        self.decoder = Decoder()
        self.held: deque[Packet] = deque()  # arrived while waiting for an ECHO_RES

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def flood(self, data: bytes) -> int:
        """Send as much of ``data`` as the kernel takes without waiting (a server
        that stops reading a peer that does not read leaves the rest unsent, and how
        much fits in the socket buffers differs between machines); the bytes sent."""
        self.sock.setblocking(False)
        sent = 0
        try:
            while sent < len(data):
                sent += self.sock.send(data[sent:])
        except (BlockingIOError, ssl.SSLWantWriteError):
            pass
        finally:
            self.sock.settimeout(self.timeout)
        return sent

    def send(self, ptype: PacketType, *args: bytes, magic: bytes = REQ) -> None:
        self.sock.sendall(pack(magic, ptype, args))

    def _recv(self, deadline: float) -> bytes | None:
        """The next bytes; None on timeout, raises ConnectionError on EOF."""
        remaining = deadline - time.monotonic()
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        if not pending and (remaining <= 0 or not select.select([self.sock], [], [], remaining)[0]):
            return None
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return chunk

    def next(self, timeout: float | None = None) -> Packet | None:
        """The next packet, or None if none arrives in time."""
        if self.held:
            return self.held.popleft()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            event = self.decoder.next_event()
            if event is not None:
                assert isinstance(event, Packet), f"unexpected text reply {event!r}"
                return event
            chunk = self._recv(deadline)
            if chunk is None:
                return None
            self.decoder.feed(chunk)

    def read(self, timeout: float | None = None) -> Packet:
        """The next packet; TimeoutError if none arrives in time."""
        packet = self.next(timeout)
        if packet is None:
            raise TimeoutError("no packet from the server")
        return packet

    def expect(self, ptype: PacketType, timeout: float | None = None) -> tuple[bytes, ...]:
        """The next packet must be of ``ptype``; returns its arguments."""
        packet = self.next(timeout)
        assert packet is not None, f"no packet (expected {ptype.name})"
        assert packet.type == ptype, f"expected {ptype.name}, got {packet}"
        return packet.args

    def expect_nothing(self, timeout: float = 0.3) -> None:
        packet = self.next(timeout)
        assert packet is None, f"unexpected {packet}"

    def closed_by_server(self, timeout: float | None = None) -> bool:
        """True once the server closes the connection (what arrives before is dropped)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while self._recv(deadline) is not None:
                pass
        except OSError:  # ConnectionError, or a reset
            return True
        return False

    def admin(self, line: bytes | str, *, ending: bytes = b"\r\n") -> bytes:
        """Send an admin line; return the raw reply (through the "." line for listings),
        or what came before the server closed the connection."""
        text = line.encode() if isinstance(line, str) else line
        self.sock.sendall(text + ending)
        listing = is_listing(text)
        out = b""
        deadline = time.monotonic() + self.timeout
        while answer_end(out, listing) < 0:
            try:
                chunk = self._recv(deadline)
            except ConnectionError:
                return out
            if chunk is None:
                raise TimeoutError(f"incomplete admin reply {out!r}")
            out += chunk  # admin replies are not framed packets: raw bytes
        return out

    # -- common exchanges ---------------------------------------------------------

    def submit(
        self, function: bytes, data: bytes, unique: bytes = b"", ptype: PacketType = T.SUBMIT_JOB
    ) -> bytes:
        self.send(ptype, function, unique, data)
        return self.expect(T.JOB_CREATED)[0]

    def grab(self, ptype: PacketType = T.GRAB_JOB_UNIQ) -> tuple[bytes, ...] | None:
        """GRAB_*: the assignment's arguments, or None for NO_JOB."""
        self.send(ptype)
        packet = self.next()
        assert packet is not None, "no answer to GRAB"
        if packet.type == T.NO_JOB:
            return None
        return packet.args

    def sync(self) -> None:
        """Round-trip an ECHO: everything sent before it has been handled.  Packets
        that arrive first are held for :meth:`next`."""
        self.send(T.ECHO_REQ, b"sync")
        arrived = []
        while True:
            packet = self.next()
            assert packet is not None, "no ECHO_RES"
            if packet.type == T.ECHO_RES:
                break
            arrived.append(packet)
        assert packet.args == (b"sync",), packet
        self.held.extend(arrived)

    def sleep(self) -> None:
        """The worker's idle cycle: GRAB (answered NO_JOB), then PRE_SLEEP."""
        assert self.grab() is None
        self.send(T.PRE_SLEEP)


def admin_command(
    port: int, line: str, host: str = HOST, timeout: float = 5.0, tls: bool = False
) -> bytes:
    """One admin line on a connection of its own; its raw reply."""
    with Wire(port, host, timeout, insecure_context() if tls else None) as conn:
        return conn.admin(line)


def submit_background(port: int, kind: PacketType, *args: bytes) -> bytes:
    """Send one SUBMIT_*_BG / SUBMIT_JOB_EPOCH packet; return the job handle."""
    with Wire(port) as conn:
        conn.send(kind, *args)
        return conn.expect(T.JOB_CREATED)[0]
