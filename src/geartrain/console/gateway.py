"""gearmand's HTTP job gateway (``--protocol=http --http-port N``).

``METHOD /function`` submits a job whose workload is the body; headers
``X-Gearman-Unique`` (default ``-``: identical workloads coalesce, as in
gearmand), ``X-Gearman-Background: true`` and ``X-Gearman-Priority: high|low``.
The reply carries ``X-Gearman-Job-Handle`` and ``X-Gearman-Command``
(``WORK_COMPLETE``, ``WORK_FAIL`` or, for background jobs, ``JOB_CREATED``) and
the result as its body.  WORK_DATA chunks are part of the body, ahead of the
final data (gearmand writes them over its own header).

As in gearmand, every reply closes the connection (``Connection: close``), a
refusal (404, 405) has an empty body, and a header line whose name is not a
token (gearmand's own test suite sends one in quotes) is skipped, not refused.
"""

from __future__ import annotations

import asyncio
import logging
import re

from aiohttp import web

from ..__about__ import __version__
from ..priority import Priority
from ..server.core import JobServer
from .submit import HttpSubmission

__all__ = ["Gateway"]

log = logging.getLogger("geartrain.server.gateway")

METHODS = frozenset(("GET", "POST", "PUT", "HEAD", "TRACE"))


class Gateway:
    """The job gateway: one handler on aiohttp's low-level server (no routes)."""

    def __init__(self, core: JobServer) -> None:
        self.core = core

    def server(self) -> web.Server:
        return _LenientServer(self.handle, access_log=None)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        headers = {"Server": f"Gearman/geartrain-{__version__}"}
        if request.method not in METHODS:
            return _reply(405, {**headers, "Allow": ", ".join(sorted(METHODS))})
        function = request.path.removeprefix("/").encode()
        if not function:
            return _reply(404, headers)
        data = b""
        if request.method in ("POST", "PUT"):
            try:
                data = await request.clone(client_max_size=self.core.config.max_packet_size).read()
            except web.HTTPRequestEntityTooLarge:
                return _reply(413, headers)
        background = request.headers.get("X-Gearman-Background", "").lower() == "true"
        priority = _level(request.headers.get("X-Gearman-Priority", ""))
        unique = request.headers.get("X-Gearman-Unique", "-").encode()
        job = HttpSubmission(self.core, request.remote)
        job.submit(function, unique, data, priority, background)
        outcome = await job.wait(background, None)
        if outcome.command in ("", "ERROR"):
            text = {**headers, "Content-Type": "text/plain; charset=utf-8"}
            return _reply(503, text, outcome.data or b"job lost")
        headers["X-Gearman-Job-Handle"] = outcome.handle or "-"
        headers["X-Gearman-Command"] = outcome.command
        return _reply(200, headers, b"".join(outcome.chunks) + outcome.data)


def _reply(status: int, headers: dict[str, str], body: bytes = b"") -> web.Response:
    response = web.Response(status=status, body=body, headers=headers)
    response.force_close()
    return response


class _LenientServer(web.Server):
    """aiohttp's low-level server, with each connection's request head filtered first."""

    def __call__(self) -> asyncio.Protocol:  # type: ignore[override]
        return _SkipBadHeaderLines(super().__call__())


_HEADER_LINE = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+:")
"""A header line aiohttp can read: the name is an RFC 9110 token."""
_HEAD_END = re.compile(rb"\n\r?\n")
"""The empty line after the head (gearmand takes bare LFs too; aiohttp then refuses them)."""
_MAX_HEAD = 1 << 16
"""A longer head goes to aiohttp unfiltered, which refuses it."""


class _SkipBadHeaderLines(asyncio.Protocol):
    """Drops the request head's lines that do not start with ``token:``.

    aiohttp answers such a request 400 and has no setting to skip the line;
    gearmand reads only the header lines it knows.  The gateway serves one
    request per connection, so only the first head is filtered."""

    def __init__(self, handler: asyncio.Protocol) -> None:
        self.handler = handler
        self.head: bytearray | None = bytearray()  # None once passed on

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.head is None:
            self.handler.data_received(data)
            return
        self.head += data
        end = _HEAD_END.search(self.head)
        if end is None and len(self.head) <= _MAX_HEAD:
            return
        head, self.head = bytes(self.head), None
        if end is not None:
            cut = end.start() + 1  # through the last header line's end
            request_line, *lines, rest = head[:cut].split(b"\n")  # rest: b""
            kept = [line for line in lines if _HEADER_LINE.match(line)]
            head = b"\n".join([request_line, *kept, rest]) + head[cut:]
        self.handler.data_received(head)

    def eof_received(self) -> bool | None:
        if self.head:
            self.handler.data_received(bytes(self.head))
        self.head = None
        return self.handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()


def _level(name: str) -> int:
    """A priority header's level; anything unknown is normal, as gearmand reads it."""
    try:
        return Priority(name.lower()).level
    except ValueError:
        return Priority.NORMAL.level
