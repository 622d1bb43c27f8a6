"""The operations listener: routes, access rules, health probes and live events."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import BasicAuth, web

from ..server.audit import who
from ..server.core import JobServer
from ..server.network import is_loopback
from ..server.ports import Observers
from .api import JOB_ACTION_RIGHTS, Api, ServerFacts, check_admin, json_error
from .history import History
from .metrics import JobMetrics, Prometheus
from .rates import Rates
from .views import STALE_AFTER

__all__ = ["Console"]

log = logging.getLogger("geartrain.server.console")

STATIC = resources.files(__package__) / "static"
SCRIPTS = ("console.js", "ui.js", "api.js", "dashboard.js", "jobs.js", "pages.js")
"""The page's JavaScript modules (console.js imports the others)."""
CSRF_HEADER = "X-Geartrain-Console"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _OneLine(logging.Filter):
    """aiohttp logs a traceback for each malformed request; one line says enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {str(error)[:200]}"
            record.args = None
            record.exc_info = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


logging.getLogger("aiohttp.server").addFilter(_OneLine())


class Console:
    """One aiohttp application serving the console, /api/, /metrics and health."""

    def __init__(
        self,
        core: JobServer,
        server: ServerFacts,
        token: str | None = None,
        metrics_public: bool = False,
        stale_after: float = STALE_AFTER,
    ) -> None:
        self.core = core
        self.server = server
        self.token = token or None
        self.public = _PROBES | ({"/metrics"} if metrics_public else set())
        """What other hosts may read without the token."""
        self.started = time.time()
        self.history = History(core.stats)
        self.metrics = JobMetrics(core.clock)
        self.rates = Rates(core.clock)
        core.observer = Observers(self.metrics, self.rates)
        self.prometheus = Prometheus(core, self.metrics, server)
        self.last_tick = time.monotonic()
        self.ticks: list[asyncio.Queue[dict[str, Any]]] = []
        self._ticker: asyncio.Task[None] | None = None
        self.api = Api(core, server, self.started, self.history, self.rates, stale_after)

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=1 << 20)
        r = app.router
        r.add_get("/", self._page("index.html", "text/html"))
        r.add_get("/index.html", self._page("index.html", "text/html"))
        r.add_get("/console.css", self._page("console.css", "text/css"))
        for script in SCRIPTS:
            r.add_get(f"/{script}", self._page(script, "text/javascript"))
        r.add_get("/metrics", self._prometheus)
        r.add_get("/healthz", self._healthz)
        r.add_get("/readyz", self._readyz)
        r.add_get("/api/events", self._events)
        self.api.routes(r)
        app.on_startup.append(self._start_ticker)
        app.on_shutdown.append(self._stop_ticker)
        return app

    # -- access ----------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            self._check_action(request)
            request["who"] = self._who(request)
        elif request.path not in self.public and not is_loopback(request.remote or ""):
            self._check_read(request)
        try:
            return await handler(request)
        except web.HTTPException as error:
            if request.path.startswith("/api/") and error.status in (404, 405):
                raise json_error(error, request) from None
            raise
        except Exception:  # a bug here must not cost the job server anything
            log.exception("console request %s %s failed", request.method, request.path)
            raise web.HTTPInternalServerError(text="internal error\n") from None

    def _check_read(self, request: web.Request) -> None:
        """Reads from other hosts need the token.  A browser gives it as the password of
        its own Basic prompt (the page and its event stream cannot add a header)."""
        if self.token is None:
            raise web.HTTPForbidden(text="reads from other hosts need --http-token\n")
        self._check_token(request, "reads from other hosts", 'Basic realm="geartrain console"')

    def _check_action(self, request: web.Request) -> None:
        """Actions: a token when one is set, else loopback only; and never cross-site."""
        if self.token is not None:
            self._check_token(request, "actions", 'Bearer realm="geartrain"')
        elif not is_loopback(request.remote or ""):
            raise web.HTTPForbidden(text="actions from other hosts need --http-token\n")
        # A browser sends this header only from our own page's scripts: a form or a
        # cross-site fetch cannot add it without a CORS preflight we never grant.
        if request.headers.get(CSRF_HEADER) != "1":
            raise web.HTTPForbidden(text=f"actions need the header {CSRF_HEADER}: 1\n")
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            raise web.HTTPForbidden(text="cross-origin action refused\n")
        # The access rules' admin rights hold here as on the admin protocol
        # (submissions are checked by the core, like any client's; a bulk
        # action's rights by the API, which reads what it does).
        for action in _admin_actions(request.path):
            check_admin(self.core, request, action)

    def _who(self, request: web.Request) -> str:
        """Who acts, for the audit list and the log: the access rules' identity of
        the address, the address, and whether the token was shown."""
        remote = request.remote or "-"
        access = self.core.access
        identity = access.identify(remote, ()) if access is not None else None
        via = "console with the token" if self.token is not None else "console"
        return who(identity, remote, via)

    def _check_token(self, request: web.Request, what: str, challenge: str) -> None:
        """The token as ``Bearer TOKEN``, or as the password of Basic credentials."""
        assert self.token is not None
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip()
        if header.startswith("Basic "):
            try:
                given = BasicAuth.decode(header).password
            except ValueError:
                given = ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise web.HTTPUnauthorized(
                text=f"{what} need the console token (Authorization: Bearer TOKEN)\n",
                headers={"WWW-Authenticate": challenge},
            )

    # -- pages, metrics, health ---------------------------------------------------

    def _page(self, name: str, ctype: str) -> Handler:
        body = (STATIC / name).read_bytes()

        async def page(request: web.Request) -> web.StreamResponse:
            return web.Response(
                body=body, content_type=ctype, charset="utf-8", headers=_PAGE_HEADERS
            )

        return page

    async def _prometheus(self, request: web.Request) -> web.StreamResponse:
        body = await self.prometheus.text()
        return web.Response(body=body, headers={"Content-Type": _PROMETHEUS_TYPE})

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        lag = time.monotonic() - self.last_tick
        if lag > 10:
            return _plain(503, f"event loop stalled: last tick {lag:.0f} s ago\n")
        return _plain(200, "ok\n")

    async def _readyz(self, request: web.Request) -> web.StreamResponse:
        if not self.server.ready:
            return _plain(503, f"not ready: {self.server.loading}\n")
        state, reason = self.server.store_state
        if state != "ok":
            return _plain(503, f"not ready: queue store {state}: {reason}\n")
        primary = self.server.store_primary
        return _plain(200, f"ready (store primary {primary})\n" if primary else "ready\n")

    # -- live events ------------------------------------------------------------

    async def _start_ticker(self, app: web.Application) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _stop_ticker(self, app: web.Application) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for queue in self.ticks:
            queue.put_nowait({})  # ends each open event stream

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.last_tick = time.monotonic()
            point = self.history.sample()
            if self.ticks:
                message = {"point": list(point), "status": self.api.status()}
                for queue in self.ticks:
                    if queue.qsize() < 5:  # a slow reader skips ticks, never grows memory
                        queue.put_nowait(message)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: one ``tick`` a second with the newest chart point and counts."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ticks.append(queue)
        try:
            await response.write(b"retry: 2000\n\n")
            while message := await queue.get():
                await response.write(
                    b"event: tick\ndata: " + json.dumps(message).encode() + b"\n\n"
                )
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.ticks.remove(queue)
        return response


_PROBES = frozenset(("/healthz", "/readyz"))
_PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, headers={"Cache-Control": "no-store"})


def _admin_actions(path: str) -> tuple[str, ...]:
    """The admin rights (geartrain.server.access.ACTIONS) a console action needs."""
    if path.startswith("/api/failed/"):
        return ("failed",)
    if path.endswith("/cancel"):
        return ("cancel",)
    if path.endswith("/drop"):
        return ("drop",)
    if path.endswith(("/pause", "/resume")):
        return ("pause",)
    if path.startswith("/api/jobs/") and path != "/api/jobs/bulk":
        return JOB_ACTION_RIGHTS.get(path.rsplit("/", 1)[-1], ())
    return ()
