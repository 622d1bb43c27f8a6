"""A few blocking protocol calls for feeding a real server's queue in tests."""

from __future__ import annotations

import socket

from geartrain.protocol import REQ, Decoder, Packet, PacketType, pack

HOST = "127.0.0.1"


def submit_background(port: int, kind: PacketType, *args: bytes) -> bytes:
    """Send one SUBMIT_*_BG / SUBMIT_JOB_EPOCH packet and return the job handle."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(pack(REQ, kind, list(args)))
        decoder = Decoder()
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("server closed the connection")
            decoder.feed(chunk)
            event = decoder.next_event()
            if isinstance(event, Packet):
                if event.type != PacketType.JOB_CREATED:
                    raise AssertionError(f"expected JOB_CREATED, got {event}")
                return event.args[0]
