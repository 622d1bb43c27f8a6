"""The failed-job set: background jobs that failed for good, kept for a person to look at.

A background job that used up its attempts (see :mod:`.policies`) lands here
with its payload, unique key, priority and the outcome of every attempt,
instead of vanishing.  The set is bounded by count and by age; the oldest
records go first.  From here a job can be retried (it runs again under its old
handle and unique key) or deleted, through the admin commands, the libraries
and the console.  With a durable store the set lives in the store too, written
by the same group-commit writer as the queue.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core import JobServer
    from .jobs import Job

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_JOBS",
    "Attempt",
    "FailedJob",
    "FailedJobs",
    "decode_outcomes",
    "encode_outcomes",
    "failed_record",
    "note_attempt",
]

log = logging.getLogger("geartrain.server")

DEFAULT_MAX_JOBS = 10_000
DEFAULT_MAX_AGE = 30 * 86400.0  # seconds


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
    """Epoch seconds."""


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


MAX_OUTCOMES = 20
"""Attempts remembered per job (a worker that keeps dying under ``-j -1`` would add without end)."""


def note_attempt(job: Job, kind: str, message: str, now: float) -> None:
    """Count a failed attempt of ``job`` and remember how it ended."""
    worker = job.worker
    name = "-"
    if worker is not None:
        name = (
            worker.host if worker.client_id == b"-" else worker.client_id.decode(errors="replace")
        )
    job.attempts += 1
    job.outcomes = (*job.outcomes[1 - MAX_OUTCOMES :], Attempt(kind, message, name, now))


def failed_record(job: Job, kind: str, now: float) -> FailedJob:
    """The failed-set record of a job that failed for good; ``kind`` is the last
    attempt's outcome (its message is added) or a reason of its own."""
    last = job.outcomes[-1] if job.outcomes else None
    reason = f"{kind}: {last.message}" if last and last.kind == kind and last.message else kind
    return FailedJob(
        job.handle,
        job.function.name,
        job.unique,
        job.data,
        int(job.priority),
        job.attempts,
        now,
        reason,
        tuple(job.outcomes),
    )


def encode_outcomes(outcomes: Iterable[Attempt]) -> str:
    """Outcomes as the JSON text the stores keep."""
    return json.dumps([[a.kind, a.message, a.worker, a.at] for a in outcomes])


def decode_outcomes(text: str | bytes | None) -> tuple[Attempt, ...]:
    """The inverse of :func:`encode_outcomes`; unreadable text gives no outcomes."""
    if not text:
        return ()
    try:
        return tuple(Attempt(str(k), str(m), str(w), float(t)) for k, m, w, t in json.loads(text))
    except (ValueError, TypeError):
        return ()


class FailedJobs:
    """The failed set of one server, oldest first; what ``JobServer.failed`` is."""

    def __init__(
        self,
        server: JobServer,
        max_jobs: int = DEFAULT_MAX_JOBS,
        max_age: float = DEFAULT_MAX_AGE,
    ) -> None:
        self.server = server
        self.max_jobs = max_jobs
        self.max_age = max_age
        self._records: OrderedDict[bytes, FailedJob] = OrderedDict()
        self.counts: dict[bytes, int] = {}  # per function, for metrics
        # Set by the app when there is a durable store: (added, removed handles).
        self.persist: Callable[[list[FailedJob], list[bytes]], None] | None = None

    def __len__(self) -> int:
        return len(self._records)

    # -- the console's and admin's interface -----------------------------------

    def records(self, function: bytes | None = None) -> list[FailedJob]:
        self.expire()
        return [r for r in self._records.values() if function is None or r.function == function]

    def get(self, handle: bytes) -> FailedJob | None:
        return self._records.get(handle)

    def retry(self, handle: bytes) -> bool:
        """Run the job again under its old handle and unique key."""
        record = self._records.get(handle)
        if record is None or not self.server.resubmit(record):
            return False
        self._forget([record])
        log.info(
            "Retrying failed job %s (%s) on request",
            record.handle.decode(errors="replace"),
            record.function.decode(errors="replace"),
        )
        return True

    def retry_all(self, function: bytes | None = None) -> int:
        retried = [r for r in self.records(function) if self.server.resubmit(r)]
        self._forget(retried)
        return len(retried)

    def delete(self, handle: bytes) -> bool:
        record = self._records.get(handle)
        if record is None:
            return False
        self._forget([record])
        return True

    def delete_all(self, function: bytes | None = None) -> int:
        records = self.records(function)
        self._forget(records)
        return len(records)

    # -- the core's side -------------------------------------------------------

    def add(self, record: FailedJob) -> None:
        """Keep a job that failed for good, making room by dropping the oldest."""
        old = self._records.pop(record.handle, None)
        if old is not None:
            self._count(old.function, -1)
        self._records[record.handle] = record
        self._count(record.function, 1)
        dropped = self._trim(record.failed_at)
        if self.persist is not None:
            self.persist([record], [r.handle for r in dropped])

    def load(self, records: Iterable[FailedJob]) -> None:
        """The records the store kept, at start (oldest first)."""
        for record in records:
            self._records[record.handle] = record
            self._count(record.function, 1)
        dropped = self._trim(self.server.clock())
        if dropped and self.persist is not None:
            self.persist([], [r.handle for r in dropped])

    def expire(self) -> None:
        """Drop records older than ``max_age``."""
        dropped = self._trim(self.server.clock())
        if dropped and self.persist is not None:
            self.persist([], [r.handle for r in dropped])

    def _trim(self, now: float) -> list[FailedJob]:
        dropped: list[FailedJob] = []
        records = self._records
        while records:
            oldest = next(iter(records.values()))
            if len(records) <= self.max_jobs and now - oldest.failed_at <= self.max_age:
                break
            del records[oldest.handle]
            self._count(oldest.function, -1)
            dropped.append(oldest)
        return dropped

    def _forget(self, records: list[FailedJob]) -> None:
        for record in records:
            if self._records.pop(record.handle, None) is not None:
                self._count(record.function, -1)
        if records and self.persist is not None:
            self.persist([], [r.handle for r in records])

    def _count(self, function: bytes, delta: int) -> None:
        count = self.counts.get(function, 0) + delta
        if count:
            self.counts[function] = count
        else:
            self.counts.pop(function, None)
