"""Submitting a job over HTTP: a short-lived connection as the core sees it.

The HTTP job gateway and the API's submit both create a :class:`HttpSubmission`:
a :class:`~geartrain.server.model.Peer` whose packets from the core are decoded
here, so the core's rules (coalescing, the store, retries) apply unchanged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..protocol import Decoder, Packet, PacketType
from ..server.core import JobServer
from ..server.model import Peer
from ..server.network import is_loopback

__all__ = ["HttpSubmission", "Outcome"]

T = PacketType
_FINAL = {T.WORK_COMPLETE, T.WORK_FAIL, T.WORK_EXCEPTION, T.ERROR}


@dataclass
class Outcome:
    """What came of a submission: ``command`` is the packet that ended the wait."""

    command: str = ""
    handle: str = ""
    data: bytes = b""
    chunks: list[bytes] = field(default_factory=list)
    numerator: int = 0
    denominator: int = 0


class HttpSubmission:
    """One job submitted on behalf of an HTTP request."""

    def __init__(self, core: JobServer, remote: str | None) -> None:
        host = remote or "-"
        self.core = core
        self.decoder = Decoder()
        self.outcome = Outcome()
        self.created: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.peer = Peer(self._receive, self._closed, host, -1, is_loopback(host))
        self.peer.client_id = b"http"

    def submit(
        self, function: bytes, unique: bytes, data: bytes, priority: int, background: bool
    ) -> None:
        self.core.connect(self.peer)
        self.core.submit(self.peer, function, unique, data, priority, background)

    async def wait(self, background: bool, timeout: float | None) -> Outcome:
        """Until JOB_CREATED (background) or the job's end; then the connection goes."""
        try:
            await asyncio.wait_for(
                asyncio.shield(self.created if background else self.finished), timeout
            )
        finally:
            self.close()
        return self.outcome

    def close(self) -> None:
        self.core.disconnect(self.peer)  # a no-op the second time

    def _closed(self) -> None:
        self.close()
        self._settle(self.created)
        self._settle(self.finished)

    @staticmethod
    def _settle(future: asyncio.Future[None]) -> None:
        if not future.done():
            future.set_result(None)

    def _receive(self, data: bytes | list[bytes]) -> None:
        self.decoder.feed(data if isinstance(data, bytes) else b"".join(data))
        while (event := self.decoder.next_event()) is not None:
            if isinstance(event, Packet):
                self._packet(event)

    def _packet(self, packet: Packet) -> None:
        out, args = self.outcome, packet.args
        if packet.type == T.JOB_CREATED:
            out.handle = args[0].decode(errors="replace")
            out.command = "JOB_CREATED"
            self._settle(self.created)
        elif packet.type == T.WORK_DATA:
            out.chunks.append(args[1])
        elif packet.type == T.WORK_STATUS:
            out.numerator, out.denominator = int(args[1] or 0), int(args[2] or 0)
        elif packet.type in _FINAL:
            out.command = packet.type.name
            out.data = args[-1] if packet.type != T.WORK_FAIL and len(args) > 1 else b""
            if packet.type == T.ERROR:
                out.data = b": ".join(args)
            self._settle(self.created)
            self._settle(self.finished)
