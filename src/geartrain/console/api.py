"""The JSON API under /api/: everything the console shows and does (docs/operations.md)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from ..priority import Priority
from .submit import HttpSubmission
from .views import failed_view, function_views, job_view, jobs, status_view, text, worker_views

if TYPE_CHECKING:
    from ..server.app import Shared
    from ..server.core import JobServer
    from ..server.persistence import StoreWriter
    from .history import History

__all__ = ["Api", "ServerFacts"]

MAX_LIMIT = 1000
STATES = ("running", "queued", "scheduled", "all")


def _reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    503: web.HTTPServiceUnavailable,
}


def _error(status: int, message: str) -> web.HTTPException:
    return _ERRORS[status](text=json.dumps({"error": message}), content_type="application/json")


def _bytes(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _limit(request: web.Request) -> int:
    try:
        return max(1, min(MAX_LIMIT, int(request.query.get("limit", "200"))))
    except ValueError:
        raise _error(400, "limit must be a number") from None


class ServerFacts(Protocol):
    """What the console reads of the running server (a :class:`ServerApp`)."""

    writer: StoreWriter | None
    store_description: str
    ready: bool
    loading: str
    cluster: Shared | None

    @property
    def store_state(self) -> tuple[str, str]: ...

    @property
    def store_primary(self) -> str | None: ...


class Api:
    """Handlers over the console's core."""

    def __init__(
        self, core: JobServer, server: ServerFacts, started: float, history: History
    ) -> None:
        self.core = core
        self.server = server
        self.started = started
        self.history = history

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/status.json", self._legacy_status)  # the older dashboard's address
        r.add_get("/api/status", self._status)
        r.add_get("/api/history", self._history)
        r.add_get("/api/functions", self._functions)
        r.add_get("/api/workers", self._workers)
        r.add_get("/api/jobs", self._jobs)
        r.add_get("/api/jobs/{handle}", self._job)
        r.add_get("/api/failed", self._failed)
        r.add_post("/api/jobs", self._submit)
        r.add_post("/api/jobs/{handle}/cancel", self._cancel)
        r.add_post("/api/functions/{function}/drop", self._drop)
        r.add_post("/api/functions/{function}/pause", self._pause(paused=True))
        r.add_post("/api/functions/{function}/resume", self._pause(paused=False))
        r.add_post("/api/failed/retry", self._failed_all(retry=True))
        r.add_post("/api/failed/delete", self._failed_all(retry=False))
        r.add_post("/api/failed/{handle}/retry", self._failed_one(retry=True))
        r.add_post("/api/failed/{handle}/delete", self._failed_one(retry=False))

    # -- reading ----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        writer = self.server.writer
        store: dict[str, Any] = {
            "description": self.server.store_description,
            "durability": self.core.config.durability,
        }
        if writer is not None:
            state, reason = writer.state
            store |= {
                "up": not writer.outage,
                "state": state,
                "reason": reason,
                "writes": writer.writes,
                "pending": writer.pending,
            }
        elif self.server.cluster is not None:
            state, reason = self.server.store_state
            store |= {"up": state == "ok", "state": state, "reason": reason}
        primary = self.server.store_primary
        if primary is not None:
            store["primary"] = primary
        return status_view(self.core, self.started, store) | {"ready": self.server.ready}

    async def _status(self, request: web.Request) -> web.Response:
        return _reply(self.status())

    async def _legacy_status(self, request: web.Request) -> web.Response:
        functions = function_views(self.core, time.time(), MAX_LIMIT)
        return _reply(self.status() | {"functions": functions})

    async def _history(self, request: web.Request) -> web.Response:
        return _reply(self.history.as_json())

    async def _functions(self, request: web.Request) -> web.Response:
        return _reply({"functions": function_views(self.core, time.time(), _limit(request))})

    async def _workers(self, request: web.Request) -> web.Response:
        return _reply({"workers": worker_views(self.core, time.time(), _limit(request))})

    async def _jobs(self, request: web.Request) -> web.Response:
        state = request.query.get("state", "all")
        if state not in STATES:
            raise _error(400, f"state must be one of {', '.join(STATES)}")
        found = jobs(self.core, state, request.query.get("function"), _limit(request))
        return _reply({"jobs": found})

    async def _job(self, request: web.Request) -> web.Response:
        handle = request.match_info["handle"].encode()
        job = self.core.jobs.get(handle)
        if job is None:
            record = await self.core.failed.get(handle)
            if record is None:
                raise _error(404, "no such job")
            return _reply(failed_view(record) | {"state": "failed"})
        return _reply(job_view(job, time.time()))

    async def _failed(self, request: web.Request) -> web.Response:
        function = request.query.get("function")
        records = await self.core.failed.records(_bytes(function))
        limit = _limit(request)
        return _reply({"total": len(records), "failed": [failed_view(r) for r in records[:limit]]})

    # -- actions --------------------------------------------------------------

    async def _cancel(self, request: web.Request) -> web.Response:
        handle = request.match_info["handle"].encode()
        cluster = self.server.cluster
        if cluster is not None:
            done = await cluster.answers.cancel(handle)
        else:
            done = self.core.cancel(handle)
        if done is False and cluster is not None:
            raise _error(409, "another server of the cluster runs it: cancel it there")
        if not done:
            raise _error(404, "no such job, or it is not yet stored")
        return _reply({"cancelled": text(handle)})

    async def _drop(self, request: web.Request) -> web.Response:
        name = request.match_info["function"].encode()
        dropped = self.core.drop_function(name)
        if dropped == "unknown":
            raise _error(404, "no such function")
        if dropped == "busy":
            raise _error(409, "the function has jobs or workers")
        return _reply({"dropped": text(name)})

    def _who(self, request: web.Request) -> str:
        """Who asked, for the log: the identity the access rules give the address (or
        that the console token was shown), and the address."""
        remote = request.remote or "-"
        access = self.core.access
        if access is not None:
            return f"{access.identify(remote, ())} at {remote} (console)"
        shown = " with the token" if "Authorization" in request.headers else ""
        return f"{remote} (console{shown})"

    def _pause(self, paused: bool) -> Any:
        async def handler(request: web.Request) -> web.Response:
            name = request.match_info["function"].encode()
            if not name:
                raise _error(400, "function is empty")
            try:
                changed = await self.core.set_paused(name, paused, self._who(request))
            except Exception as error:  # each store has its own errors; all mean the same here
                done = "paused" if paused else "resumed"
                raise _error(503, f"{done} here, but not saved: {error}") from None
            return _reply({"function": text(name), "paused": paused, "changed": changed})

        return handler

    def _failed_one(self, retry: bool) -> Any:
        async def handler(request: web.Request) -> web.Response:
            handle = request.match_info["handle"]
            failed = self.core.failed
            if not await (failed.retry if retry else failed.delete)(handle.encode()):
                raise _error(404, "no such failed job")
            return _reply({"retry" if retry else "delete": handle})

        return handler

    def _failed_all(self, retry: bool) -> Any:
        async def handler(request: web.Request) -> web.Response:
            function = _bytes(request.query.get("function"))
            failed = self.core.failed
            count = await (failed.retry_all if retry else failed.delete_all)(function)
            return _reply({"retry_all" if retry else "delete_all": count})

        return handler

    async def _submit(self, request: web.Request) -> web.Response:
        """{"function", "data", "unique"?, "priority"?, "background"?, "timeout"?}."""
        try:
            body = await request.json()
            function = str(body["function"]).encode()
            data = str(body.get("data", "")).encode()
            unique = str(body.get("unique", "")).encode()
            priority = Priority(str(body.get("priority", "normal"))).level
            background = bool(body.get("background", False))
            timeout = float(body.get("timeout", 30))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise _error(
                400,
                'give {"function": NAME, "data": TEXT} and optionally unique, '
                "priority (high|normal|low), background, timeout (seconds)",
            ) from None
        if not function:
            raise _error(400, "function is empty")
        job = HttpSubmission(self.core, request.remote)
        job.submit(function, unique, data, priority, background)
        try:
            outcome = await job.wait(background, timeout)
        except TimeoutError:
            return _reply(
                {"handle": job.outcome.handle, "state": "waiting", "timed_out": True}, 202
            )
        if outcome.command in ("", "ERROR"):
            raise _error(409, outcome.data.decode(errors="replace") or "job lost")
        result = b"".join(outcome.chunks) + outcome.data
        return _reply(
            {
                "handle": outcome.handle,
                "command": outcome.command,
                "result": result.decode(errors="replace") if not background else None,
            },
            202 if background else 200,
        )
