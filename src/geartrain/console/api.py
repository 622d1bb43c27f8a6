"""The JSON API under /api/: everything the console shows and does (docs/operations.md)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiohttp import web

from ..durations import parse_duration
from ..priority import Priority
from ..server.admin import MAX_RESULT_WAIT
from ..server.results import wait_for_end
from .listing import JobFilter, Scan, failed_jobs, page, state_of
from .shared import SHARED_STATES, shared_detail, shared_handles, shared_page
from .submit import HttpSubmission
from .views import (
    DETAIL,
    STALE_AFTER,
    failed_detail,
    failed_summary,
    failed_view,
    flagged,
    function_views,
    job_detail,
    jobs,
    result_view,
    status_view,
    summary,
    text,
    worker_views,
)

if TYPE_CHECKING:
    from ..server.app import Shared
    from ..server.core import JobServer
    from ..server.persistence import StoreWriter
    from .history import History
    from .rates import Rates

__all__ = ["JOB_ACTION_RIGHTS", "Api", "ServerFacts", "check_admin", "json_error", "who"]

T = TypeVar("T")

MAX_LIMIT = 1000
PAGE = 50
MAX_PAGE = 500
ACTIONS = ("retry", "delete", "cancel")
BULK_TURN = 1000
"""Jobs a bulk action touches between two turns of the event loop."""
JOB_ACTION_RIGHTS = {"retry": ("failed",), "delete": ("failed", "cancel"), "cancel": ("cancel",)}
"""The admin rights of the access rules each job action needs (deleting a waiting
job cancels it)."""


def _reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    503: web.HTTPServiceUnavailable,
}


def json_error(error: web.HTTPException, request: web.Request) -> web.HTTPException:
    """The router's own answer (no such path, a wrong method) as JSON, like the API's."""
    if error.content_type == "application/json":
        return error
    if error.status == 404:
        message = f"no such API: {request.path}"
    else:
        message = f"{request.method} is not allowed on {request.path}"
    error.text = json.dumps({"error": message})
    error.content_type = "application/json"
    return error


def _error(status: int, message: str) -> web.HTTPException:
    return _ERRORS[status](text=json.dumps({"error": message}), content_type="application/json")


def _bytes(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _limit(request: web.Request, default: int = 200, most: int = MAX_LIMIT) -> int:
    try:
        return max(1, min(most, int(request.query.get("limit", default))))
    except ValueError:
        raise _error(400, "limit must be a number") from None


def _offset(request: web.Request) -> int:
    try:
        return max(0, int(request.query.get("offset", "0")))
    except ValueError:
        raise _error(400, "offset must be a number") from None


def _filter(query: Any) -> JobFilter:
    try:
        return JobFilter.parse(query)
    except ValueError as error:
        raise _error(400, str(error)) from None


def check_admin(core: JobServer, request: web.Request, action: str) -> None:
    """Refuse unless the access rules, if any, give the requester's address this admin right."""
    access = core.access
    if access is None:
        return
    identity = access.identify(request.remote or "", ())
    if not access.may_admin(identity, action):
        core.stats.refused_admin += 1
        core.refusals.note("admin", identity, request.remote or "-", action.encode())
        raise web.HTTPForbidden(text=f"the access rules do not allow {action!r} here\n")


def who(request: web.Request) -> str:
    """Who asks: set by the console's access check (token identity or address)."""
    return str(request.get("who") or request.remote or "-")


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
        self,
        core: JobServer,
        server: ServerFacts,
        started: float,
        history: History,
        rates: Rates,
        stale_after: float = STALE_AFTER,
    ) -> None:
        self.core = core
        self.server = server
        self.started = started
        self.history = history
        self.rates = rates
        self.stale_after = stale_after

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/status.json", self._legacy_status)  # the older dashboard's address
        r.add_get("/api/status", self._status)
        r.add_get("/api/history", self._history)
        r.add_get("/api/functions", self._functions)
        r.add_get("/api/rates", self._rates)
        r.add_get("/api/schedules", self._schedules)
        r.add_get("/api/cluster", self._cluster)
        r.add_get("/api/workers", self._workers)
        r.add_get("/api/jobs", self._jobs)
        r.add_get("/api/jobs/{handle}", self._job)
        r.add_get("/api/jobs/{handle}/result", self._result)
        r.add_get("/api/failed", self._failed)
        r.add_post("/api/jobs", self._submit)
        r.add_post("/api/jobs/bulk", self._bulk)
        r.add_post("/api/jobs/{handle}/cancel", self._cancel)
        r.add_post("/api/jobs/{handle}/retry", self._retry)
        r.add_post("/api/jobs/{handle}/delete", self._delete)
        r.add_post("/api/functions/{function}/drop", self._drop)
        r.add_post("/api/functions/{function}/pause", self._pause(paused=True))
        r.add_post("/api/functions/{function}/resume", self._pause(paused=False))
        r.add_post("/api/failed/retry", self._failed_all(retry=True))
        r.add_post("/api/failed/delete", self._failed_all(retry=False))
        r.add_post("/api/failed/{handle}/retry", self._failed_one(retry=True))
        r.add_post("/api/failed/{handle}/delete", self._failed_one(retry=False))
        r.add_get("/api/audit", self._audit)

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
        flags = flagged(self.core, time.time(), self.stale_after)
        return status_view(self.core, self.started, store) | {
            "ready": self.server.ready,
            "flags": flags,
        }

    async def _status(self, request: web.Request) -> web.Response:
        return _reply(self.status())

    async def _legacy_status(self, request: web.Request) -> web.Response:
        functions = function_views(self.core, time.time(), MAX_LIMIT)
        return _reply(self.status() | {"functions": functions})

    async def _history(self, request: web.Request) -> web.Response:
        return _reply(self.history.as_json())

    async def _functions(self, request: web.Request) -> web.Response:
        views = function_views(
            self.core, time.time(), _limit(request, MAX_LIMIT), self.rates, self.stale_after
        )
        return _reply(views)

    async def _schedules(self, request: web.Request) -> web.Response:
        """Recurring schedules with their next and last firing and what became of each."""
        recurring = self.core.recurring
        out = []
        for schedule in recurring.schedules:
            history = [
                {
                    "at": firing.at,
                    "handle": text(firing.handle) if firing.handle is not None else None,
                    "outcome": await self._outcome(firing.handle),
                }
                for firing in reversed(recurring.history.get(schedule.name, ()))
            ]
            out.append(
                {
                    "name": schedule.name,
                    "function": text(schedule.function),
                    "cron": schedule.expression,
                    "next": recurring.next_firing(schedule),
                    "last": recurring.last(schedule.name),
                    "history": history,
                }
            )
        return _reply(out)

    async def _cluster(self, request: web.Request) -> web.Response:
        """The members of the cluster, from its shared store."""
        cluster = self.server.cluster
        if cluster is None:
            return _reply({"enabled": False, "members": []})
        try:
            members = await cluster.answers.member_list()
            queues = await cluster.shared_queues() or []
        except Exception as error:  # the store does not answer: say so, stay up
            return _reply(
                {"enabled": True, "members": [], "error": f"{type(error).__name__}: {error}"}
            )
        return _reply(
            {
                "enabled": True,
                "members": [
                    {
                        "id": m.id,
                        "name": m.name,
                        "address": m.address,
                        "lease_age": round(m.lease_age, 3),
                        "started_age": round(m.started_age, 1),
                        "holds": m.holds,
                        "me": m.me,
                    }
                    for m in members
                ],
                # The shared store's jobs per function, the same on every member.
                "functions": [
                    {"function": text(name), "jobs": jobs, "running": running}
                    for name, jobs, running in queues
                ],
            }
        )

    async def _outcome(self, handle: bytes | None) -> str:
        """What became of a fired job: its state while held, "failed", or
        "finished" (done or cancelled); "cluster" when another member holds it."""
        if handle is None:
            return "cluster"
        job = self.core.jobs.get(handle)
        if job is not None:
            return state_of(job)
        return "failed" if await self.core.failed.get(handle) is not None else "finished"

    async def _rates(self, request: web.Request) -> web.Response:
        function = request.query.get("function")
        if not function:
            raise _error(400, "give ?function=NAME")
        return _reply({"function": function, "minutes": self.rates.hour(function.encode())})

    async def _workers(self, request: web.Request) -> web.Response:
        return _reply({"workers": worker_views(self.core, time.time(), _limit(request))})

    async def _jobs(self, request: web.Request) -> web.Response:
        """One state's jobs, filtered, sorted and paged, with the total matching."""
        if request.query.get("state") == "all":  # the older page's list of everything
            return _reply(
                {"jobs": jobs(self.core, "all", request.query.get("function"), _limit(request))}
            )
        flt = _filter(request.query)
        offset, limit = _offset(request), _limit(request, PAGE, MAX_PAGE)
        now = time.time()
        cluster = self.server.cluster
        if flt.state == "failed":
            records = await failed_jobs(self.core, flt)
            total, exact = len(records), True
            items = [failed_summary(r) for r in records[offset : offset + limit]]
        elif cluster is not None and flt.state in SHARED_STATES and not request.query.get("scope"):
            total, exact, items = await self._store_call(shared_page(cluster, flt, offset, limit))
        else:
            found = page(self.core, flt, offset, limit)
            total, exact = found.total, found.exact
            items = [summary(self.core, j, now) for j in found.items]
        return _reply(
            {"total": total, "exact": exact, "offset": offset, "limit": limit, "items": items}
            | {"jobs": items}  # the older page's name for them
        )

    async def _job(self, request: web.Request) -> web.Response:
        handle = request.match_info["handle"].encode()
        job = self.core.jobs.get(handle)
        if job is not None:
            return _reply(job_detail(self.core, job, time.time()))
        cluster = self.server.cluster
        if cluster is not None:
            shared = await self._store_call(cluster.shared_job(handle, DETAIL))
            if shared is not None:
                return _reply(shared_detail(shared))
        record = await self.core.failed.get(handle)
        if record is None:
            raise _error(404, "no such job")
        return _reply(failed_detail(record))

    async def _store_call(self, call: Awaitable[T]) -> T:
        """A read of the cluster's shared store; one that fails (or passes the
        store's deadline) is a 503 with one line."""
        try:
            return await call
        except Exception as error:  # each store has its own errors; all mean the same here
            raise _error(503, f"the shared store did not answer: {error}") from None

    async def _result(self, request: web.Request) -> web.Response:
        """A background job's kept result; ``?wait=SECONDS`` waits for a job held here."""
        handle = request.match_info["handle"].encode()
        try:
            wait = min(parse_duration(request.query.get("wait", "0")), MAX_RESULT_WAIT)
        except ValueError:
            raise _error(400, "wait must be a number of seconds") from None
        found = await wait_for_end(self.core.results, self.core.jobs, handle, wait)
        if found is None:
            raise _error(404, "no result kept for this job (unknown, not kept, or expired)")
        status, record = found
        ended = record is not None
        view: dict[str, Any] = {"handle": text(handle), "status": status, "ended": ended}
        if record is not None:
            view |= result_view(record)
        return _reply(view)

    async def _failed(self, request: web.Request) -> web.Response:
        function = request.query.get("function")
        records = await self.core.failed.records(_bytes(function))
        limit = _limit(request)
        return _reply({"total": len(records), "failed": [failed_view(r) for r in records[:limit]]})

    # -- actions --------------------------------------------------------------

    async def _cancel_one(self, handle: bytes) -> bool | None:
        """True if cancelled; False if another member of the cluster runs it; None
        if there is no such job."""
        cluster = self.server.cluster
        if cluster is not None:
            return await cluster.answers.cancel(handle)
        return self.core.cancel(handle) or None

    async def _act(self, action: str, handle: bytes) -> bool:
        """One job's action, as the single and the bulk actions do it."""
        if action == "cancel":
            return bool(await self._cancel_one(handle))
        failed = self.core.failed
        if action == "retry":
            return self.core.retry_now(handle) or await failed.retry(handle)
        if await failed.delete(handle):
            return True
        job = self.core.jobs.get(handle)
        if job is not None and job.worker is not None:
            return False  # running: deleting it would cancel its worker's attempt
        return bool(await self._cancel_one(handle))  # deleting a waiting job cancels it

    def _audit_entry(self, request: web.Request, action: str, target: str, touched: int) -> None:
        self.core.audit.record(who(request), action, target, touched)

    async def _cancel(self, request: web.Request) -> web.Response:
        handle = request.match_info["handle"].encode()
        done = await self._cancel_one(handle)
        self._audit_entry(request, "cancel", text(handle), int(bool(done)))
        if done is False:
            raise _error(409, "another server of the cluster runs it: cancel it there")
        if not done:
            raise _error(404, "no such job, or it is not yet stored")
        return _reply({"cancelled": text(handle), "touched": 1})

    async def _retry(self, request: web.Request) -> web.Response:
        """Retry now: a job waiting for its next attempt, or a failed one."""
        handle = request.match_info["handle"].encode()
        done = await self._act("retry", handle)
        self._audit_entry(request, "retry", text(handle), int(done))
        if not done:
            raise _error(404, "no such waiting retry or failed job")
        return _reply({"retry": text(handle), "touched": 1})

    async def _delete(self, request: web.Request) -> web.Response:
        """Delete a failed job, or a job that waits (queued, scheduled, retrying)."""
        handle = request.match_info["handle"].encode()
        job = self.core.jobs.get(handle)
        if job is not None and job.worker is not None:
            raise _error(409, "the job is running: cancel it")
        done = await self._act("delete", handle)
        self._audit_entry(request, "delete", text(handle), int(done))
        if not done:
            raise _error(404, "no such job")
        return _reply({"delete": text(handle), "touched": 1})

    async def _bulk(self, request: web.Request) -> web.Response:
        """{"action", "handles": [...]} or {"action", "filter": {...}}: how many were touched."""
        try:
            body = await request.json()
            action = body["action"]
            handles = body.get("handles")
            query = body.get("filter")
            if action not in ACTIONS or (handles is None) == (query is None):
                raise ValueError
            if handles is not None and not (
                isinstance(handles, list) and all(isinstance(h, str) for h in handles)
            ):
                raise ValueError
            if query is not None and not isinstance(query, dict):
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            raise _error(
                400,
                'give {"action": "retry"|"delete"|"cancel", "handles": [HANDLE, ...]} '
                'or {"action": ..., "filter": {"state", "function", "priority", "unique", "q"}}',
            ) from None
        for right in JOB_ACTION_RIGHTS[action]:
            check_admin(self.core, request, right)
        if handles is not None:
            targets = [h.encode() for h in handles]
            described = f"{len(targets)} selected"
        else:
            assert query is not None
            flt = _filter(query)
            cluster = self.server.cluster
            if flt.state == "failed":
                targets = [r.handle for r in await failed_jobs(self.core, flt)]
            elif cluster is not None and flt.state in SHARED_STATES and "scope" not in query:
                # What the list shows on a cluster member: the shared store's jobs.
                targets = await self._store_call(shared_handles(cluster, flt))
            else:
                targets = [j.handle for j in Scan(self.core, flt)]
            described = "all matching " + json.dumps(query, sort_keys=True)
        touched = 0
        for i, handle in enumerate(targets, 1):
            touched += await self._act(action, handle)
            if not i % BULK_TURN:
                await asyncio.sleep(0)  # a large action lets the job port take its turns
        self._audit_entry(request, action, described, touched)
        return _reply({"touched": touched})

    async def _audit(self, request: web.Request) -> web.Response:
        audit = self.core.audit
        offset, limit = _offset(request), _limit(request, PAGE, MAX_PAGE)
        return _reply(
            {
                "total": len(audit),
                "offset": offset,
                "limit": limit,
                "items": [e._asdict() for e in audit.newest(offset, limit)],
            }
        )

    async def _drop(self, request: web.Request) -> web.Response:
        name = request.match_info["function"].encode()
        dropped = self.core.drop_function(name)
        if dropped == "unknown":
            raise _error(404, "no such function")
        self._audit_entry(request, "drop function", text(name), 0)
        if dropped == "busy":
            raise _error(409, "the function has jobs or workers")
        return _reply({"dropped": text(name)})

    def _pause(self, paused: bool) -> Any:
        async def handler(request: web.Request) -> web.Response:
            name = request.match_info["function"].encode()
            if not name:
                raise _error(400, "function is empty")
            try:
                changed = await self.core.set_paused(name, paused, who(request))
            except Exception as error:  # each store has its own errors; all mean the same here
                done = "paused" if paused else "resumed"
                raise _error(503, f"{done} here, but not saved: {error}") from None
            return _reply({"function": text(name), "paused": paused, "changed": changed})

        return handler

    def _failed_one(self, retry: bool) -> Any:
        async def handler(request: web.Request) -> web.Response:
            handle = request.match_info["handle"]
            failed = self.core.failed
            done = await (failed.retry if retry else failed.delete)(handle.encode())
            self._audit_entry(request, "retry" if retry else "delete", handle, int(done))
            if not done:
                raise _error(404, "no such failed job")
            return _reply({"retry" if retry else "delete": handle})

        return handler

    def _failed_all(self, retry: bool) -> Any:
        async def handler(request: web.Request) -> web.Response:
            function = _bytes(request.query.get("function"))
            failed = self.core.failed
            count = await (failed.retry_all if retry else failed.delete_all)(function)
            target = "all failed" + (f" of {text(function)}" if function else "")
            self._audit_entry(request, "retry" if retry else "delete", target, count)
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
