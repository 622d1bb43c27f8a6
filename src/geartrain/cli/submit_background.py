"""``geartrain client -b`` over a blocking socket, for start-up time.

Queuing background jobs is one request and one answer per job, so it needs
neither asyncio nor the client library; shell loops call ``client -b`` once
per job, and loading those would be most of each call's time.  The output is
the asyncio path's (``Task created`` with ``-v``, errors in libgearman's
words).  Cases that need more (TLS, ``-t``, several servers) take that path.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..address import Address
from ..errors import NoServersAvailable, ServerError
from ..protocol import REQ, Decoder, Packet, PacketType, pack
from .gearman_args import GearmanArgs, print_error

if TYPE_CHECKING:
    from .client import _Output

__all__ = ["applies", "run"]

T = PacketType

_SUBMIT = {"high": T.SUBMIT_JOB_HIGH_BG, "normal": T.SUBMIT_JOB_BG, "low": T.SUBMIT_JOB_LOW_BG}

# Seconds to wait for a connection or an answer, as the library's defaults.
_TIMEOUT = 10.0


def applies(args: GearmanArgs) -> bool:
    """True when this path can do the whole call."""
    return (
        args.background
        and not args.use_ssl
        and args.timeout_seconds is None
        and len(args.servers()) == 1
    )


def run(
    args: GearmanArgs, out: _Output, describe: Callable[[Exception, list[Address]], str]
) -> int | None:
    """Submit every workload to every ``-f`` function; the exit status is 0, as the C tool's.

    None when the server cannot be reached: nothing was sent, and the asyncio
    path reports it (and retries) as usual.
    """
    from .client import _workloads

    servers = args.servers()
    try:
        sock = socket.create_connection((servers[0].host, servers[0].port), _TIMEOUT)
    except OSError:
        return None
    try:
        with sock:
            session = _Session(sock)
            for workload in _workloads(args):
                errors: list[Exception] = []
                for function in args.functions:
                    try:
                        out.created(session.submit(args, function, workload))
                    except ServerError as exc:
                        errors.append(exc)
                if errors:
                    print_error(describe(errors[0], servers))
    except OSError:
        print_error(describe(NoServersAvailable("connection lost"), servers))
    finally:
        out.stdout.fflush()
    return 0


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
        packet = pack(REQ, _SUBMIT[str(args.priority)], (function.encode(), unique, workload))
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
