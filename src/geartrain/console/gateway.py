"""gearmand's HTTP job gateway (``--protocol=http --http-port N``).

``METHOD /function`` submits a job whose workload is the body; headers
``X-Gearman-Unique`` (default ``-``: identical workloads coalesce, as in
gearmand), ``X-Gearman-Background: true`` and ``X-Gearman-Priority: high|low``.
The reply carries ``X-Gearman-Job-Handle`` and ``X-Gearman-Command``
(``WORK_COMPLETE``, ``WORK_FAIL`` or, for background jobs, ``JOB_CREATED``) and
the result as its body; the connection closes after it, as gearmand does.
WORK_DATA chunks are part of the body, ahead of the final data (gearmand
writes them over its own header).
"""

from __future__ import annotations

import logging

from aiohttp import web

from ..__about__ import __version__
from ..server.core import JobServer
from .submit import HttpSubmission

__all__ = ["Gateway", "PRIORITY_NAMES"]

log = logging.getLogger("geartrain.server.gateway")

METHODS = frozenset(("GET", "POST", "PUT", "HEAD", "TRACE"))
PRIORITY_NAMES = {"high": 0, "normal": 1, "low": 2}


class Gateway:
    """The aiohttp application of the job gateway."""

    def __init__(self, core: JobServer) -> None:
        self.core = core

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.core.config.max_packet_size)
        app.router.add_route("*", "/{function:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        headers = {"Server": f"Gearman/geartrain-{__version__}"}
        if request.method not in METHODS:
            raise web.HTTPMethodNotAllowed(request.method, sorted(METHODS), headers=headers)
        function = request.match_info["function"].encode()
        if not function:
            raise web.HTTPNotFound(headers=headers)
        data = await request.read() if request.method in ("POST", "PUT") else b""
        background = request.headers.get("X-Gearman-Background", "").lower() == "true"
        priority = PRIORITY_NAMES.get(request.headers.get("X-Gearman-Priority", "").lower(), 1)
        unique = request.headers.get("X-Gearman-Unique", "-").encode()
        job = HttpSubmission(self.core, request.remote)
        job.submit(function, unique, data, priority, background)
        outcome = await job.wait(background, None)
        if outcome.command in ("", "ERROR"):
            raise web.HTTPServiceUnavailable(
                text=outcome.data.decode(errors="replace") or "job lost", headers=headers
            )
        body = b"".join(outcome.chunks) + outcome.data
        headers["X-Gearman-Job-Handle"] = outcome.handle or "-"
        headers["X-Gearman-Command"] = outcome.command
        response = web.Response(body=body, headers=headers)
        response.force_close()
        return response
