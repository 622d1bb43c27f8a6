"""What the stores keep: a queued job, a job that failed for good, and how each
failed attempt ended.

These records are the stores' own: the server makes them from its jobs, and
every backend reads and writes them without knowing the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "FAILED_COLUMNS",
    "Attempt",
    "FailedJob",
    "KeptResult",
    "SharedJob",
    "SharedQuery",
    "StoredJob",
    "decode_outcomes",
    "encode_outcomes",
    "failed_record",
    "failed_row",
]


class StoredJob(NamedTuple):
    """A background job as a store keeps it (a tuple: one is made for every
    background job on the acknowledgement path, so it must be cheap to make)."""

    id: int
    """Assigned by the server, increasing in submission order; unique in the store."""
    function: bytes
    unique: bytes
    data: bytes
    priority: int
    """0 high, 1 normal, 2 low (gearmand's numbering, which its queue tables use)."""
    when: int = 0
    """Epoch seconds at which the job may run; 0 means now."""
    handle: bytes = b""
    """The job's handle, so that a retried job keeps it across a restart (empty in
    rows written before handles were kept, or by gearmand)."""
    failures: int = 0
    """Failed attempts so far (a retry waiting for its time); its column is
    ``attempts`` where a backend has columns."""
    outcomes: str = ""
    """How those attempts ended, as JSON (:func:`encode_outcomes`)."""
    retry: str = ""
    """The retry policy its submission carried, in the retries extension's words
    (``geartrain.retry.Retry.to_text``); empty: none (the function's policy
    applies).  Its column is ``retry_policy`` (NULL: none)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one attempt at a job ended."""

    kind: str
    """"fail", "exception", "worker_lost" or "timeout"."""
    message: str
    """The exception text, or a few words on what happened."""
    worker: str
    """The worker's client id (SET_CLIENT_ID), or its address if it set none."""
    at: float
    """Epoch seconds: when it ended."""
    started: float = 0.0
    """Epoch seconds: when it began (0 where not known: outcomes kept before start
    times were, a lost member's job)."""


@dataclass(frozen=True, slots=True)
class FailedJob:
    """A background job that failed for good."""

    handle: bytes
    function: bytes
    unique: bytes
    data: bytes
    priority: int
    attempts: int
    failed_at: float
    reason: str
    outcomes: tuple[Attempt, ...] = ()


class KeptResult(NamedTuple):
    """The result of a background job whose result is kept (see
    ``geartrain.server.results``), or the promise of one while the job runs."""

    handle: bytes
    function: bytes
    status: str
    """"pending" (the job has not ended; kept so the per-submission opt-in
    survives a restart), "complete", or how the last attempt failed: "fail",
    "exception", "timeout", "worker_lost"; or "cancelled"."""
    data: bytes
    """WORK_COMPLETE's data, WORK_EXCEPTION's; empty otherwise."""
    keep: float
    """Seconds the result is kept once the job has ended."""
    ended_at: float = 0.0
    """Epoch seconds; 0 while pending."""

    @property
    def expires_at(self) -> float:
        """When the result is purged (infinity while pending)."""
        return self.ended_at + self.keep if self.ended_at else float("inf")


def encode_outcomes(outcomes: Iterable[Attempt]) -> str:
    """Outcomes as the JSON text the stores keep."""
    return json.dumps([[a.kind, a.message, a.worker, a.at, a.started] for a in outcomes])


def decode_outcomes(text: str | bytes | None) -> tuple[Attempt, ...]:
    """The inverse of :func:`encode_outcomes`; unreadable text gives no outcomes."""
    if not text:
        return ()
    try:
        return tuple(_attempt(*entry) for entry in json.loads(text))
    except (ValueError, TypeError):
        return ()


def _attempt(kind: Any, message: Any, worker: Any, at: Any, started: Any = 0.0) -> Attempt:
    """One kept outcome (those kept before start times were have four fields)."""
    return Attempt(str(kind), str(message), str(worker), float(at), float(started))


FAILED_COLUMNS = (
    "handle, function_name, unique_key, data, priority, attempts, failed_at, reason, outcomes"
)
"""The SQL backends' failed tables' columns, in :func:`failed_row`'s order."""


def failed_record(row: Iterable[Any]) -> FailedJob:
    """The inverse of :func:`failed_row`: a row read from a failed table."""
    h, f, u, d, p, a, t, r, o = row
    return FailedJob(h, f, u, d, p, a, t, r, decode_outcomes(o))


def failed_row(record: FailedJob) -> tuple[bytes, bytes, bytes, bytes, int, int, float, str, str]:
    """A failed job as the SQL backends' failed tables store it, in column order."""
    return (
        record.handle,
        record.function,
        record.unique,
        record.data,
        record.priority,
        record.attempts,
        record.failed_at,
        record.reason,
        encode_outcomes(record.outcomes),
    )


class SharedJob(NamedTuple):
    """A job in a cluster's shared store, as the console lists it."""

    handle: bytes
    function: bytes
    unique: bytes
    priority: int
    data: bytes
    """The payload's first bytes (as many as the listing asked for)."""
    size: int
    claimed: bool
    """Claimed by a member (held for its workers, or running)."""
    due: float
    """Epoch seconds it is (or was) due."""
    owner: int
    """The id of the member that claimed it; 0 if none."""
    failures: int
    numerator: int
    denominator: int
    outcomes: tuple[Attempt, ...]


class SharedQuery(NamedTuple):
    """Which shared jobs a console list asks for, filtered, one page of them:
    "queued" (unclaimed and due) or "running" (claimed) in claim order (priority,
    then age; ``newest`` reverses it); "scheduled" or "retrying" (waiting for a
    due time, without or after a failed attempt) by age, or by due time."""

    state: str
    function: bytes | None
    priority: int | None
    unique: bytes | None
    text: bytes | None
    """In the payload's first ``preview`` bytes; looked for in at most ``scan``
    jobs (the total is then not exact)."""
    newest: bool
    offset: int
    limit: int
    preview: int
    scan: int
    by_due: bool = False
