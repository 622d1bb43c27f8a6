"""JSON views of the core for the API: plain dicts, bounded lists."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from ..__about__ import __version__
from ..priority import Priority
from ..server.core import JobServer
from ..server.flags import ServerConfig
from ..server.model import Function, Job, JobState, Peer
from ..server.stats import STAT_NAMES
from ..store.records import Attempt, FailedJob, KeptResult
from .listing import PREVIEW, state_of

if TYPE_CHECKING:
    from .rates import Rates

__all__ = [
    "STALE_AFTER",
    "failed_detail",
    "flagged",
    "function_flags",
    "failed_summary",
    "failed_view",
    "job_detail",
    "job_summary",
    "shown",
    "summary",
    "function_views",
    "job_view",
    "jobs",
    "oldest_queued",
    "result_view",
    "status_view",
    "worker_views",
]

DETAIL = 4096
"""Bytes of a payload shown on a job's own page."""
_CONTROL = frozenset(range(32)) - {9, 10, 13}


def text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def result_view(record: KeptResult) -> dict[str, Any]:
    """A kept result: its data as text if it is UTF-8, else in base64 (``encoding`` says)."""
    try:
        data, encoding = record.data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        data, encoding = base64.b64encode(record.data).decode(), "base64"
    return {
        "function": text(record.function),
        "data": data,
        "encoding": encoding,
        "ended_at": record.ended_at,
        "expires_at": record.expires_at,
    }


def preview(raw: bytes) -> str:
    return text(raw[:PREVIEW]) + ("…" if len(raw) > PREVIEW else "")


def shown(raw: bytes, cap: int) -> tuple[str, bool]:
    """The first ``cap`` bytes as text, or, when they are not text, the first
    ``cap // 2`` as hex; and whether they were binary."""
    part = raw[:cap]
    try:
        shown = part.decode()
    except UnicodeDecodeError as error:
        # A character cut at the cap is still text.
        if error.start < len(part) - 3 or error.reason != "unexpected end of data":
            return raw[: cap // 2].hex(), True
        shown = part[: error.start].decode()
    if not _CONTROL.isdisjoint(part):
        return raw[: cap // 2].hex(), True
    return shown, False


def _reason(outcomes: Sequence[Attempt]) -> str | None:
    if not outcomes:
        return None
    last = outcomes[-1]
    return f"{last.kind}: {last.message}" if last.message else last.kind


def job_summary(
    handle: bytes,
    function: bytes,
    unique: bytes,
    priority: int,
    data: bytes,
    *,
    size: int,
    state: str,
    created: float | None,
    due: float | None,
    attempt: int,
    attempts: int | None,
    worker: str | None,
    reason: str | None,
) -> dict[str, Any]:
    """The API's job summary (docs/operations.md), the same shape for a live job,
    a failed record and a cluster's shared job.  ``data`` is the payload or its
    first bytes at least (the preview's); ``size`` is the whole payload's."""
    text_preview, binary = shown(data, PREVIEW)
    return {
        "handle": text(handle),
        "function": text(function),
        "unique": text(unique),
        "priority": Priority.of_level(priority).value,
        "state": state,
        "created": created,
        "due": due,
        "attempt": attempt,
        "attempts": attempts,
        "size": size,
        "preview": text_preview,
        "binary": binary,
        "worker": worker,
        "reason": reason,
    }


def summary(core: JobServer, job: Job, now: float) -> dict[str, Any]:
    """A live job in a list: its summary, with the older fields of :func:`job_view`."""
    view = job_view(job, now)
    return (
        view
        | job_summary(
            job.handle,
            job.function.name,
            job.unique,
            job.priority,
            job.data,
            size=len(job.data),
            state=state_of(job),
            created=job.created_at or None,
            due=job.when or None,
            attempt=job.failures + 1,
            attempts=core.policy(job).attempts,
            worker=view["worker"],
            reason=_reason(job.outcomes),
        )
        | {"started": job.started_at if job.state is JobState.RUNNING else None}
    )


def failed_summary(record: FailedJob) -> dict[str, Any]:
    """A failed-set record in a list."""
    return job_summary(
        record.handle,
        record.function,
        record.unique,
        record.priority,
        record.data,
        size=len(record.data),
        state="failed",
        created=None,  # a failed record keeps when it failed, not when it was made
        due=None,
        attempt=record.attempts,
        attempts=None,
        worker=record.outcomes[-1].worker if record.outcomes else None,
        reason=record.reason,
    ) | {"failed_at": record.failed_at}


def _history(outcomes: Sequence[Attempt]) -> list[dict[str, Any]]:
    return [
        {
            "attempt": i,
            "started": a.started or None,
            "ended": a.at,
            "outcome": a.kind,
            "reason": a.message,
        }
        for i, a in enumerate(outcomes, 1)
    ]


def job_detail(core: JobServer, job: Job, now: float) -> dict[str, Any]:
    """A live job's own page: its summary, payload, client, attempts and actions."""
    payload, binary = shown(job.data, DETAIL)
    state = state_of(job)
    history = _history(job.outcomes)
    if state == "running":
        history.append(
            {
                "attempt": job.failures + 1,
                "started": job.started_at,
                "ended": None,
                "outcome": "running",
                "reason": None,
            }
        )
    client = job.clients[0].host if job.clients else None
    actions = _ACTIONS.get(state, ["cancel"])
    return summary(core, job, now) | {
        "payload": payload,
        "binary": binary,
        "truncated": len(job.data) > DETAIL,
        "client": client,
        "owner": job.owner or None,
        "history": history,
        "next_retry": job.when if state == "retrying" else None,
        "actions": actions,
    }


_ACTIONS = {"retrying": ["retry", "cancel"], "pending": [], "done": []}
"""What may be done to a live job, by its state (a pending job is not yet stored)."""


def failed_detail(record: FailedJob) -> dict[str, Any]:
    """A failed job's own page."""
    payload, binary = shown(record.data, DETAIL)
    return (
        failed_view(record)
        | failed_summary(record)
        | {
            "payload": payload,
            "binary": binary,
            "truncated": len(record.data) > DETAIL,
            "client": None,
            "history": _history(record.outcomes),
            "next_retry": None,
            "actions": ["retry", "delete"],
        }
    )


def job_view(job: Job, now: float) -> dict[str, Any]:
    state = JobState(job.state).name.lower()
    worker = job.worker
    return {
        "handle": text(job.handle),
        "function": text(job.function.name),
        "unique": text(job.unique),
        "priority": Priority.of_level(job.priority).value,
        "background": job.background,
        "state": state,
        "age_seconds": round(now - job.created_at, 3) if job.created_at else None,
        "running_seconds": round(now - job.started_at, 3) if worker is not None else None,
        "progress": [job.numerator, job.denominator],
        "due": job.when or None,
        "attempts": job.failures or job.retries,
        "worker": text(worker.client_id) if worker is not None else None,
        "data_preview": preview(job.data),
        "size": len(job.data),
    }


def oldest_queued(queues: Iterable[Iterable[Job]]) -> float:
    """When the oldest queued job of these queues was created (0 if none is queued)."""
    oldest = 0.0
    for queue in queues:
        for job in queue:
            if job.state is JobState.QUEUED:
                if not oldest or job.created_at < oldest:
                    oldest = job.created_at
                break  # FIFO: the first live entry is the oldest of its queue
    return oldest


STALE_AFTER = ServerConfig.console_stale_after
"""Seconds a function's oldest queued job may wait before the function is flagged."""


def function_flags(f: Function, oldest: float, now: float, stale_after: float) -> list[str]:
    """Why a function needs a look: queued jobs and no worker; a job waiting too long.
    A paused function's jobs wait on purpose: it has no flag."""
    flags: list[str] = []
    if f.paused:
        return flags
    if f.has_queued() and not f.workers:
        flags.append("no_workers")
    if oldest and now - oldest > stale_after:
        flags.append("stale")
    return flags


def function_views(
    core: JobServer,
    now: float,
    limit: int,
    rates: Rates | None = None,
    stale_after: float = STALE_AFTER,
) -> list[dict[str, Any]]:
    out = []
    for f in islice(core.functions.values(), limit):
        oldest = oldest_queued(f.queues or ())
        age = round(now - oldest, 3) if oldest else None
        queued = dict(zip(("high", "normal", "low"), f.queued, strict=True))
        out.append(
            {
                "function": text(f.name),
                "total": f.total,
                "queued": queued | {"total": sum(f.queued)},
                "scheduled": f.scheduled,
                "running": f.running,
                "workers": len(f.workers),
                "paused": f.paused,
                "oldest_age": age,
                "oldest_queued_seconds": age,
                "max_queue": list(f.max_queue) if f.max_queue else None,
                "rates": rates.recent(f.name) if rates is not None else None,
                "flags": function_flags(f, oldest, now, stale_after),
            }
        )
    return out


def flagged(core: JobServer, now: float, stale_after: float) -> list[dict[str, Any]]:
    """Every function with a flag (for the status): only those with queued jobs can have one."""
    out = []
    for f in core.queues.ready:
        flags = function_flags(f, oldest_queued(f.queues or ()), now, stale_after)
        if flags:
            out.append({"function": text(f.name), "flags": flags})
    return out


def _worker_view(peer: Peer, now: float) -> dict[str, Any]:
    return {
        "fd": peer.fd,
        "address": peer.host,
        "client_id": text(peer.client_id),
        "functions": [text(f.name) for f in peer.functions()],
        "sleeping": peer.sleeping,
        "jobs": [job_view(j, now) for j in peer.jobs],
        "connected_seconds": round(now - peer.connected_at, 1) if peer.connected_at else None,
    }


def worker_views(core: JobServer, now: float, limit: int) -> list[dict[str, Any]]:
    workers = (p for p in core.peers if p.abilities or p.jobs)
    return [_worker_view(p, now) for p in islice(workers, limit)]


def _by_state(core: JobServer, state: str) -> Iterator[Job]:
    if state == "running":
        for peer in core.peers:
            yield from peer.jobs
    elif state == "queued":
        for f in core.functions.values():
            for queue in f.queues or ():
                yield from (j for j in queue if j.state is JobState.QUEUED)
    elif state == "scheduled":
        if any(f.scheduled for f in core.functions.values()):
            yield from (j for j in core.jobs.values() if j.state is JobState.SCHEDULED)
    else:
        yield from core.jobs.values()


def jobs(core: JobServer, state: str, function: str | None, limit: int) -> list[dict[str, Any]]:
    now = time.time()
    found: Iterable[Job] = _by_state(core, state)
    if function is not None:
        name = function.encode()
        found = (j for j in found if j.function.name == name)
    return [job_view(j, now) for j in islice(found, limit)]


def failed_view(record: Any) -> dict[str, Any]:
    """A failed-job record of ``core.failed`` (when the server keeps them)."""
    return {
        "handle": text(record.handle),
        "function": text(record.function),
        "unique": text(record.unique),
        "priority": Priority.of_level(record.priority).value,
        "attempts": record.attempts,
        "failed_at": record.failed_at,
        "reason": record.reason,
        "data_preview": preview(record.data),
        "size": len(record.data),
        "outcomes": [
            {"kind": a.kind, "message": a.message, "worker": a.worker, "at": a.at}
            for a in record.outcomes
        ],
    }


def _rss() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def status_view(core: JobServer, started: float, store: dict[str, Any]) -> dict[str, Any]:
    stats = core.stats
    counts = {"queued": 0, "running": 0, "scheduled": 0}
    for f in core.functions.values():
        counts["queued"] += sum(f.queued)
        counts["running"] += f.running
        counts["scheduled"] += f.scheduled
    workers = sum(1 for p in core.peers if p.abilities)
    return {
        "version": __version__,
        "pid": os.getpid(),
        "uptime_seconds": round(time.time() - started, 1),
        "connections": len(core.peers),
        "workers": workers,
        "busy_workers": sum(1 for p in core.peers if p.jobs),
        "functions": len(core.functions),
        "paused": [text(name) for name in core.pauses.listed()],
        "jobs": len(core.jobs),
        "counts": counts
        | {
            "processed": stats.completed,
            "failed": stats.failed + stats.exceptions + stats.timed_out + stats.dropped,
            # Waiting retries are scheduled jobs: look at those, not at every job.
            "retries": sum(1 for j in core.queues.waiting() if j.failures)
            if counts["scheduled"]
            else 0,
            "dead": sum(core.failed.counts().values()),  # the cluster's in cluster mode
        },
        "counters": {name: getattr(stats, name) for name in STAT_NAMES},
        "memory_bytes": _rss(),
        "durability": core.config.durability,
        "store": store,
    }
