"""A blocking raw-socket peer for end-to-end tests: packets and admin lines, with timeouts."""

from __future__ import annotations

import select
import socket
import time

from geartrain.protocol import REQ, Decoder, Packet, PacketType, pack

T = PacketType


class Wire:
    """One connection to a job server, speaking raw packets."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.decoder = Decoder()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, ptype: PacketType, *args: bytes) -> None:
        self.sock.sendall(pack(REQ, ptype, args))

    def _fill(self, deadline: float) -> bool:
        """Read more bytes; False on timeout, raises ConnectionError on EOF."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([self.sock], [], [], remaining)[0]:
            return False
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.decoder.feed(chunk)
        return True

    def next(self, timeout: float | None = None) -> Packet | None:
        """The next packet, or None if none arrives in time."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            event = self.decoder.next_event()
            if event is not None:
                assert isinstance(event, Packet), f"unexpected text reply {event!r}"
                return event
            if not self._fill(deadline):
                return None

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
        """True once the server closes the connection (packets before that are dropped)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while self._fill(deadline):
                pass
        except (ConnectionError, OSError):
            return True
        return False

    def admin(self, line: bytes | str, *, ending: bytes = b"\r\n") -> bytes:
        """Send an admin line; return the raw reply (through the "." line for listings)."""
        text = line.encode() if isinstance(line, str) else line
        self.sock.sendall(text + ending)
        words = text.split()
        listing = bool(words) and words[0].lower() in (
            b"status",
            b"workers",
            b"prioritystatus",
            b"show",
        )
        out = b""
        deadline = time.monotonic() + self.timeout
        while True:
            # Admin replies are not framed packets: read raw bytes.
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"incomplete admin reply {out!r}"
            if not select.select([self.sock], [], [], remaining)[0]:
                continue
            buffered = self.sock.recv(65536)
            if not buffered:
                return out
            out += buffered
            if out.startswith(b"ERR") and out.endswith(b"\r\n"):
                return out
            if listing and (out == b".\n" or out.endswith(b"\n.\n")):
                return out
            if not listing and out.endswith(b"\n"):
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
        """Round-trip an ECHO: everything sent before it has been handled."""
        self.send(T.ECHO_REQ, b"sync")
        assert self.expect(T.ECHO_RES) == (b"sync",)

    def sleep(self) -> None:
        """The worker's idle cycle: GRAB (answered NO_JOB), then PRE_SLEEP."""
        assert self.grab() is None
        self.send(T.PRE_SLEEP)
