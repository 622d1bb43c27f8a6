"""TLS handshakes with a deadline, and a log line for each kind of refusal.

asyncio's TLS server hides why a handshake failed (it logs only in debug
mode) and waits 60 s for a peer that never starts one.  Here the listener
accepts plain TCP; each new socket is taken from its plain transport before
anything is read (closing that transport in ``connection_made`` stops it
from ever reading) and handed to ``connect_accepted_socket`` with TLS and a
short deadline.  A failure (no certificate, another CA, an expired
certificate, plain text, silence) is logged with its reason, at most once a
minute per reason; a peer that completes the handshake becomes an ordinary
:class:`~.network.Connection`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any, cast

from .logs import LogThrottle
from .network import Network

__all__ = ["TlsHandshake", "TlsRefusals"]

log = logging.getLogger("geartrain.server.tls")


class TlsRefusals:
    """Logs refused handshakes: one line per reason a minute."""

    def __init__(self) -> None:
        self.throttle = LogThrottle()

    def note(self, host: str, reason: str) -> None:
        if self.throttle.due(reason):
            log.warning("Refused TLS handshake from %s: %s", host, reason)


class TlsHandshake(asyncio.Protocol):
    """The plain protocol of a just-accepted socket: hands it on to TLS at once."""

    def __init__(
        self,
        network: Network,
        context: ssl.SSLContext,
        timeout: float,
        refusals: TlsRefusals,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self.network = network
        self.context = context
        self.timeout = timeout
        self.refusals = refusals
        self.tasks = tasks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw: Any = transport.get_extra_info("socket")
        peername = transport.get_extra_info("peername")
        host = str(peername[0]) if isinstance(peername, tuple) else "-"
        sock = socket.fromfd(raw.fileno(), raw.family, raw.type, raw.proto)  # a duplicate
        cast(
            asyncio.Transport, transport
        ).abort()  # before it reads: the TLS layer must see the ClientHello
        task = asyncio.get_running_loop().create_task(self._upgrade(sock, host))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _upgrade(self, sock: socket.socket, host: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                self.network.protocol_factory,
                sock,
                ssl=self.context,
                ssl_handshake_timeout=self.timeout,
            )
        except asyncio.CancelledError:
            sock.close()
            raise
        except (OSError, TimeoutError, ValueError) as error:
            self.refusals.note(host, _reason(error, self.timeout))
            sock.close()


def _reason(error: BaseException, timeout: float) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate not accepted ({error.verify_message})"
    if isinstance(error, ssl.SSLError):
        return error.reason or str(error)
    if isinstance(error, TimeoutError) or "longer than" in str(error):
        return f"no handshake within {timeout:g} s"
    if isinstance(error, ConnectionError):
        return "the peer closed the connection during the handshake"
    return str(error) or type(error).__name__
