"""What a server's cluster node asks of the shared store (PostgreSQL, Redis).

Each operation is atomic in the store and takes a whole batch, so a batch
costs one round trip.  Job ids and server ids are the store's; an attempt
number, raised by every claim, fences late writes of a server that lost a job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ..store.records import FailedJob
from . import Claimed, Failure, Retry, Submission

__all__ = ["ClusterBackend"]


class ClusterBackend(Protocol):
    description: str
    """One line for the log: where the shared jobs are."""

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """What a lost or failing store raises."""

    # -- life -----------------------------------------------------------------

    async def open(self, on_wake: Callable[[], None]) -> None:
        """Connect, create what is missing, and listen for wake-ups."""

    async def listen(self, on_wake: Callable[[], None]) -> None:
        """(Re)subscribe to the hint that jobs were queued somewhere."""

    @property
    def listening(self) -> bool: ...

    async def close(self) -> None: ...

    # -- leases -----------------------------------------------------------------

    async def register(self, name: str, ttl: float) -> int:
        """A new server id, its lease valid for ``ttl`` seconds."""

    async def renew(self, server: int, ttl: float) -> bool:
        """Extend a lease that has not expired; False if it has."""

    async def leave(self, server: int) -> None: ...

    async def rescue(self, retry_limit: int) -> tuple[int, int, int]:
        """Sweep servers whose lease expired; each of their running jobs gets a
        ``worker_lost`` outcome and one more retry and failure, and is queued
        again, or past ``retry_limit`` (--job-retries) moves to the failed set:
        (servers removed, jobs queued again, jobs moved to the failed set)."""

    # -- jobs -------------------------------------------------------------------

    async def submit(self, jobs: Sequence[Submission], prefix: bytes) -> list[tuple[int, bytes]]:
        """Insert or coalesce each job, durably; its (id, handle prefix) in order."""

    async def claim(self, server: int, wants: Sequence[tuple[bytes, int]]) -> list[Claimed]:
        """Up to n queued jobs per (function, n), highest priority and oldest first;
        nothing unless ``server``'s lease is valid."""

    async def ack(self, done: Sequence[tuple[int, int]]) -> set[int]:
        """Delete finished (id, attempt) jobs still at that attempt; the ids deleted."""

    async def release(self, jobs: Sequence[tuple[int, int, int]]) -> None:
        """(id, attempt, retries): queue again jobs this server gives back."""

    async def progress(self, jobs: Sequence[tuple[int, int, int, int]]) -> None:
        """(id, attempt, numerator, denominator) of running jobs."""

    async def retry(self, jobs: Sequence[Retry]) -> None:
        """Failed attempts of jobs held here, fenced by the attempt: each is queued
        again due ``delay`` seconds from now (by the store's clock), with its
        counts and outcomes, its progress cleared; other servers are woken."""

    async def fail(self, jobs: Sequence[Failure]) -> None:
        """Jobs held here that failed for good, fenced by the attempt: each moves to
        the failed set, stamped with the store's time; its unique key no longer
        coalesces."""

    async def fire(self, key: bytes, job: Submission, prefix: bytes) -> int | None:
        """Record a schedule's firing ``key`` (kept a day) and submit ``job`` with
        ``key`` as its unique key, atomically: the job's id, or None if the firing
        was recorded already."""

    async def cancel(self, job_id: int, prefix: bytes) -> bool | None:
        """Delete a queued job: True if deleted, False if a server has claimed it,
        None if there is no such job."""

    # -- the failed-job set -------------------------------------------------------

    async def failed_jobs(
        self, job_id: int | None = None, prefix: bytes | None = None, function: bytes | None = None
    ) -> list[FailedJob]:
        """The failed set, oldest first: one job (by id and handle prefix), one
        function's, or all."""

    async def retry_failed(
        self, job_id: int | None = None, prefix: bytes | None = None, function: bytes | None = None
    ) -> int:
        """Queue failed jobs again (chosen as for :meth:`failed_jobs`) under their
        ids, keeping the claim counter and outcomes, failures and retries reset,
        the unique key restored unless another job took it; wakes the servers.
        How many."""

    async def delete_failed(
        self, job_id: int | None = None, prefix: bytes | None = None, function: bytes | None = None
    ) -> int:
        """Drop failed jobs (chosen as for :meth:`failed_jobs`); how many."""

    async def trim_failed(self, max_jobs: int, max_age: float) -> int:
        """Drop the oldest failed jobs beyond ``max_jobs`` and those older than
        ``max_age`` seconds; how many."""

    async def failed_counts(self) -> dict[bytes, int]:
        """The failed set's size per function."""

    # -- status -------------------------------------------------------------------

    async def status(self, job_id: int) -> tuple[bytes, int, int, int] | None:
        """(handle prefix, state: 0 queued / 2 running, numerator, denominator), or None."""

    async def status_unique(self, unique: bytes) -> tuple[int, int, int] | None:
        """(state, numerator, denominator) of the job with this unique key, or None."""

    async def queues(self) -> list[tuple[bytes, int, int]]:
        """(function, jobs, running) over the whole cluster, by function."""

    async def members(self) -> list[tuple[int, str, float, float, int]]:
        """(id, name, seconds since start, seconds left on the lease, running jobs)."""
