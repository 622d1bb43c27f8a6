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

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from ..store.records import FailedJob

if TYPE_CHECKING:
    from .model import Job

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_MAX_JOBS", "FailedJobs"]

log = logging.getLogger("geartrain.server")

DEFAULT_MAX_JOBS = 10_000
DEFAULT_MAX_AGE = 30 * 86400.0  # seconds


class FailedJobs:
    """The failed set of one server, oldest first (a :class:`~.ports.FailedSet`).

    ``resubmit`` runs a record's job again (False if its handle is in use);
    ``clock`` gives epoch seconds."""

    def __init__(
        self,
        resubmit: Callable[[FailedJob], bool],
        clock: Callable[[], float],
        max_jobs: int = DEFAULT_MAX_JOBS,
        max_age: float = DEFAULT_MAX_AGE,
    ) -> None:
        self.resubmit = resubmit
        self.clock = clock
        self.max_jobs = max_jobs
        self.max_age = max_age
        self._records: OrderedDict[bytes, FailedJob] = OrderedDict()
        self._counts: dict[bytes, int] = {}  # per function, for metrics
        # Set by the app when there is a durable store: (added, removed handles).
        self.persist: Callable[[list[FailedJob], list[bytes]], None] | None = None

    def __len__(self) -> int:
        return len(self._records)

    def counts(self) -> Mapping[bytes, int]:
        return self._counts

    def bound(self, max_jobs: int, max_age: float) -> None:
        self.max_jobs = max_jobs
        self.max_age = max_age
        self.expire()

    # -- the console's and admin's interface -----------------------------------

    async def records(self, function: bytes | None = None) -> list[FailedJob]:
        self.expire()
        return [r for r in self._records.values() if function is None or r.function == function]

    async def get(self, handle: bytes) -> FailedJob | None:
        return self._records.get(handle)

    async def retry(self, handle: bytes) -> bool:
        """Run the job again under its old handle and unique key."""
        record = self._records.get(handle)
        if record is None or not self.resubmit(record):
            return False
        self._forget([record])
        log.info(
            "Retrying failed job %s (%s) on request",
            record.handle.decode(errors="replace"),
            record.function.decode(errors="replace"),
        )
        return True

    async def retry_all(self, function: bytes | None = None) -> int:
        retried = [r for r in await self.records(function) if self.resubmit(r)]
        self._forget(retried)
        return len(retried)

    async def delete(self, handle: bytes) -> bool:
        record = self._records.get(handle)
        if record is None:
            return False
        self._forget([record])
        return True

    async def delete_all(self, function: bytes | None = None) -> int:
        records = await self.records(function)
        self._forget(records)
        return len(records)

    # -- the core's side -------------------------------------------------------

    def keep(self, job: Job, record: FailedJob) -> None:
        self.add(record)

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
        dropped = self._trim(self.clock())
        if dropped and self.persist is not None:
            self.persist([], [r.handle for r in dropped])

    def expire(self) -> None:
        """Drop records older than ``max_age``."""
        dropped = self._trim(self.clock())
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
        count = self._counts.get(function, 0) + delta
        if count:
            self._counts[function] = count
        else:
            self._counts.pop(function, None)
