"""``geartrain client -b`` to one server, over a blocking socket, for start-up time.

Queuing background jobs is one request and one answer per job, so it needs
neither asyncio nor the client library; shell loops call ``client -b`` once
per job, and loading those would be most of each call's time.  The output is
the asyncio path's (``Task created`` with ``-v``, errors in libgearman's
words).  ``-t`` and several servers (``GEARMAN_SERVER``) take that path.
"""

from __future__ import annotations

import os

from ..address import DEFAULT_CONNECT_TIMEOUT, DEFAULT_IO_TIMEOUT
from ..errors import ServerError
from ..protocol import REQ, Decoder, Packet, PacketType, pack, submit_packet
from .connect import connect
from .output import ClientOutput, describe
from .workloads import workloads

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    import socket

    from .gearman_args import GearmanArgs

__all__ = ["applies", "run"]

T = PacketType


def applies(args: GearmanArgs) -> bool:
    """True when this path can do the whole call."""
    return args.background and args.timeout_seconds is None and len(args.servers()) == 1


def run(args: GearmanArgs) -> int:
    """Submit every workload to every ``-f`` function; returns the exit status
    (0, as the C tool's, unless strict mode saw an error)."""
    out = ClientOutput(args)
    server = args.servers()[0]
    try:
        sock = connect(server.host, server.port, args.ssl_context(), DEFAULT_CONNECT_TIMEOUT)
    except OSError as exc:
        for _ in workloads(args):
            out.error(describe(exc, args))
        return out.exit_status
    try:
        with sock:
            sock.settimeout(DEFAULT_IO_TIMEOUT)
            session = _Session(sock)
            for workload in workloads(args):
                errors: list[Exception] = []
                for function in args.functions:
                    try:
                        out.created(session.submit(args, function, workload))
                    except ServerError as exc:
                        errors.append(exc)
                if errors:
                    out.error(describe(errors[0], args))
    except OSError as exc:
        out.error(describe(exc, args))
    finally:
        out.stdout.fflush()
    return out.exit_status


class _Session:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = Decoder()

    def submit(self, args: GearmanArgs, function: str, workload: bytes) -> bytes:
        """Queue one job; return its handle.

        Raises:
            ServerError: the server refused it (ERROR).
            OSError: the connection failed or closed.
        """
        unique = args.unique.encode() if args.unique is not None else _random_unique()
        kind = submit_packet(args.priority.level, True)
        packet = pack(REQ, kind, (function.encode(), unique, workload))
        self.sock.sendall(packet)
        reply = self._reply()
        if reply.type is T.ERROR:
            code, text = (a.decode(errors="replace") for a in (*reply.args, b"", b"")[:2])
            raise ServerError(code, text)
        return reply.args[0] if reply.args else b""

    def _reply(self) -> Packet:
        while True:
            event = self.decoder.next_event()
            if isinstance(event, Packet) and event.type in (T.JOB_CREATED, T.ERROR):
                return event
            if event is not None:
                continue  # nothing else answers a submission
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("server closed the connection")
            self.decoder.feed(data)


def _random_unique() -> bytes:
    # A random UUID, as the library and libgearman use, without loading uuid.
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}".encode()
