"""JSON views of the core for the API: plain dicts, bounded lists."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from ..__about__ import __version__
from ..priority import Priority
from ..server.core import JobServer
from ..server.model import Job, JobState, Peer
from ..server.stats import STAT_NAMES

__all__ = [
    "failed_view",
    "function_views",
    "job_view",
    "jobs",
    "oldest_queued",
    "status_view",
    "worker_views",
]

PREVIEW = 200  # bytes of a payload shown in lists


def text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def preview(raw: bytes) -> str:
    return text(raw[:PREVIEW]) + ("…" if len(raw) > PREVIEW else "")


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


def function_views(core: JobServer, now: float, limit: int) -> list[dict[str, Any]]:
    out = []
    for f in islice(core.functions.values(), limit):
        oldest = oldest_queued(f.queues or ())
        out.append(
            {
                "function": text(f.name),
                "total": f.total,
                "queued": dict(zip(("high", "normal", "low"), f.queued, strict=True)),
                "scheduled": f.scheduled,
                "running": f.running,
                "workers": len(f.workers),
                "oldest_queued_seconds": round(now - oldest, 3) if oldest else None,
                "max_queue": list(f.max_queue) if f.max_queue else None,
                "paused": f.paused,
            }
        )
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
            "retries": sum(1 for j in core.jobs.values() if j.failures)
            if counts["scheduled"]
            else 0,
            "dead": sum(core.failed.counts().values()),  # the cluster's in cluster mode
        },
        "counters": {name: getattr(stats, name) for name in STAT_NAMES},
        "memory_bytes": _rss(),
        "durability": core.config.durability,
        "store": store,
    }
