"""A cluster member's job lists: the shared store's jobs, the same on every member.

Background jobs of a cluster live in the shared store (queued there, claimed by
a member for its workers); a member's own core holds only those it claimed and
its foreground jobs (``?scope=member`` lists those, as a single server does).
The shared lists show queued, claimed ("running"), scheduled and retrying jobs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..store.records import SharedJob, SharedQuery
from .listing import PREVIEW, SCAN_LIMIT, JobFilter
from .views import DETAIL, _history, _reason, job_summary, preview, shown

if TYPE_CHECKING:
    from ..server.app import Shared

__all__ = ["SHARED_STATES", "shared_detail", "shared_handles", "shared_page", "shared_summary"]

SHARED_STATES = ("queued", "running", "scheduled", "retrying")


BULK_PAGE = 1000
"""Handles read per call when an action takes every job matching a filter."""


async def shared_page(
    cluster: Shared, flt: JobFilter, offset: int, limit: int
) -> tuple[int, bool, list[dict[str, Any]]]:
    """(total, exact, summaries) of one page of the shared store's jobs."""
    total, exact, found = await cluster.list_jobs(_query(flt, offset, limit))
    return total, exact, [shared_summary(j) for j in found]


async def shared_handles(cluster: Shared, flt: JobFilter) -> list[bytes]:
    """The handles of every shared job the list shows, for a bulk action (read
    before acting: acting while paging would shift the pages)."""
    handles: list[bytes] = []
    while True:
        total, _exact, found = await cluster.list_jobs(_query(flt, len(handles), BULK_PAGE))
        handles += [j.handle for j in found]
        if len(found) < BULK_PAGE or len(handles) >= total:
            return handles


def _query(flt: JobFilter, offset: int, limit: int) -> SharedQuery:
    return SharedQuery(
        flt.state,
        flt.function,
        flt.priority,
        flt.unique,
        flt.text,
        flt.order() == "-age",
        offset,
        limit,
        PREVIEW,
        SCAN_LIMIT,
        flt.order() == "due",
    )


def state_of(job: SharedJob, now: float) -> str:
    """A shared job's state as the console names it."""
    if job.claimed:
        return "running"
    if job.due > now:
        return "retrying" if job.failures else "scheduled"
    return "queued"


def shared_summary(job: SharedJob) -> dict[str, Any]:
    """A shared job in a list, with the older fields a live job's summary has."""
    return job_summary(
        job.handle,
        job.function,
        job.unique,
        job.priority,
        job.data,
        size=job.size,
        state=state_of(job, time.time()),
        created=None,  # the shared store keeps no creation time
        due=job.due or None,
        attempt=job.failures + 1,
        attempts=None,  # the policy is the holding member's
        worker=None,
        reason=_reason(job.outcomes),
    ) | {
        "background": True,
        "data_preview": preview(job.data),
        "progress": [job.numerator, job.denominator],
        "member": job.owner or None,
        "shared": True,  # from the cluster's store: no "retry now" for a waiting retry
        "started": None,
        "age_seconds": None,
        "running_seconds": None,
    }


def shared_detail(job: SharedJob) -> dict[str, Any]:
    """A shared job's own page (a member that holds it shows its own, richer one)."""
    payload, binary = shown(job.data, DETAIL)
    return shared_summary(job) | {
        "payload": payload,
        "binary": binary,
        "truncated": job.size > DETAIL,
        "client": None,
        "owner": None,
        "history": _history(job.outcomes),
        "next_retry": job.due if job.failures and not job.claimed else None,
        "actions": [] if job.claimed else ["cancel"],  # a retry now is its holder's
    }
