"""What a server's cluster node asks of the shared store (PostgreSQL, Redis).

Each operation is atomic in the store and takes a whole batch, so a batch
costs one round trip.  Job ids and server ids are the store's; an attempt
number, raised by every claim, fences late writes of a server that lost a job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from . import Claimed, Submission

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
        """Sweep servers whose lease expired: (servers removed, jobs queued again,
        jobs dropped past ``retry_limit``)."""

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

    # -- status -------------------------------------------------------------------

    async def status(self, job_id: int) -> tuple[bytes, int, int, int] | None:
        """(handle prefix, state: 0 queued / 2 running, numerator, denominator), or None."""

    async def status_unique(self, unique: bytes) -> tuple[int, int, int] | None:
        """(state, numerator, denominator) of the job with this unique key, or None."""

    async def queues(self) -> list[tuple[bytes, int, int]]:
        """(function, jobs, running) over the whole cluster, by function."""

    async def members(self) -> list[tuple[int, str, float, float, int]]:
        """(id, name, seconds since start, seconds left on the lease, running jobs)."""
