"""What a cluster member asks of the shared store (PostgreSQL, Redis).

Each operation is atomic in the store and takes a whole batch, so a batch
costs one round trip.  Job ids and server ids are the store's; a claim number,
raised by every claim, fences late writes of a server that lost a job.  The
store decides no retry: what becomes of a job is decided by a member
(the core's rules, :mod:`.rescue` for a dead member's jobs) and written here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ..store.records import FailedJob, KeptResult, SharedJob, SharedQuery
from . import Claimed, Failure, Orphan, Retry, Submission
from .states import State

__all__ = ["MAX_BATCH", "ClusterBackend"]

MAX_BATCH = 2000
"""Jobs per call."""


class ClusterBackend(Protocol):
    description: str
    """One line for the log: where the shared jobs are."""

    @property
    def primary(self) -> str | None:
        """``host:port`` of the store's server that takes the writes (with several
        hosts or Sentinel: the primary of the moment), once known."""

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

    async def orphans(self, ttl: float) -> tuple[list[int], list[Orphan]] | None:
        """Take the sweep, if no other server has it (for at most ``ttl`` seconds,
        or until :meth:`swept`): the servers whose lease expired, and the jobs
        claimed by servers that are not alive.  None if another server sweeps."""

    async def swept(self, dead: Sequence[int]) -> None:
        """Let go of the sweep; the ``dead`` servers that have no claimed job
        left are removed."""

    # -- jobs -------------------------------------------------------------------

    async def submit(self, jobs: Sequence[Submission], prefix: bytes) -> list[tuple[int, bytes]]:
        """Insert or coalesce each job, durably; its (id, handle prefix) in order."""

    async def claim(self, server: int, wants: Sequence[tuple[bytes, int]]) -> list[Claimed]:
        """Up to n queued jobs per (function, n), highest priority and oldest first,
        each with its claim number raised; nothing unless ``server``'s lease is
        valid."""

    # Every write below about claimed jobs is fenced by the claim number; on Redis
    # also by the owner, which must be one of this process's server ids, or one of
    # ``owners`` (the dead servers whose jobs a sweep rescues).

    async def claimed(self, server: int) -> list[tuple[int, int, int]]:
        """(id, claim, retries) of every job the store says ``server`` has claimed
        and not acknowledged (to find claims whose answer was lost)."""

    async def ack(self, done: Sequence[tuple[int, int]], owners: Sequence[int] = ()) -> set[int]:
        """Delete finished (id, claim) jobs still at that claim; the ids deleted."""

    async def release(self, jobs: Sequence[tuple[int, int, int]]) -> None:
        """(id, claim, retries): queue again jobs this server gives back."""

    async def progress(self, jobs: Sequence[tuple[int, int, int, int]]) -> None:
        """(id, claim, numerator, denominator) of running jobs."""

    async def retry(self, jobs: Sequence[Retry], owners: Sequence[int] = ()) -> None:
        """Failed attempts of claimed jobs: each is queued again due ``delay``
        seconds from now (by the store's clock), with its counts and outcomes,
        its progress cleared; other servers are woken."""

    async def fail(self, jobs: Sequence[Failure], owners: Sequence[int] = ()) -> None:
        """Claimed jobs that failed for good: each moves to the failed set, stamped
        with the store's time; its unique key no longer coalesces."""

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

    # -- paused functions (see geartrain.server.pauses) ---------------------------

    async def paused(self) -> list[bytes]:
        """The functions paused cluster-wide."""

    async def set_paused(self, name: bytes, paused: bool) -> None:
        """Pause ``name`` cluster-wide, or (``paused`` False) resume it."""

    # -- kept results of background jobs --------------------------------------------

    async def write_results(self, added: Sequence[KeptResult], removed: Sequence[bytes]) -> None:
        """Store (or replace) kept results and delete those of the ``removed`` handles."""

    async def result(self, handle: bytes) -> KeptResult | None:
        """The kept result of ``handle``, or None (the caller checks its expiry)."""

    async def trim_results(self, now: float) -> int:
        """Drop the results whose time is up at ``now`` (epoch seconds); how many."""

    # -- status -------------------------------------------------------------------

    async def status(self, job_id: int) -> tuple[bytes, State, int, int] | None:
        """(handle prefix, state, numerator, denominator), or None."""

    async def status_unique(self, unique: bytes) -> tuple[State, int, int] | None:
        """(state, numerator, denominator) of the job with this unique key, or None."""

    async def queues(self) -> list[tuple[bytes, int, int]]:
        """(function, jobs, running) over the whole cluster, by function."""

    async def members(self) -> list[tuple[int, str, float, float, int]]:
        """(id, name, seconds since start, seconds left on the lease, running jobs)."""

    # -- the console's lists (read-only) ---------------------------------------------

    async def list_jobs(self, query: SharedQuery) -> tuple[int, bool, list[SharedJob]]:
        """(how many match, whether that count is exact, one page of them)."""

    async def job(self, job_id: int, prefix: bytes, preview: int) -> SharedJob | None:
        """One queued, waiting or claimed job, by id and handle prefix."""
