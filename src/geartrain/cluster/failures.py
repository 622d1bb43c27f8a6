"""The cluster's failed-job set, as the core, the admin commands and the console
reach it (:class:`geartrain.server.ports.FailedSet`).

Jobs that failed for good on any member go into one set in the shared store
(see :meth:`.backend.ClusterBackend.fail`), so every member answers ``show failed
jobs``, ``retry failed`` and ``delete failed`` (and the console's views) the
same, from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..server.failed import DEFAULT_MAX_AGE, DEFAULT_MAX_JOBS
from ..store.records import FailedJob
from . import parse_handle

if TYPE_CHECKING:
    from ..server.model import Job
    from .backend import ClusterBackend

__all__ = ["SharedFailedJobs"]


class SharedFailedJobs:
    """The failed set shared by the members of a cluster.  ``keep`` is the keeper's:
    a held job moves to the set in the store, fenced by its claim."""

    def __init__(self, backend: ClusterBackend, keep: Callable[[Job, FailedJob], None]) -> None:
        self.backend = backend
        self.keep = keep
        self.max_jobs = DEFAULT_MAX_JOBS
        self.max_age = DEFAULT_MAX_AGE
        self._counts: dict[bytes, int] = {}

    def bound(self, max_jobs: int, max_age: float) -> None:
        """Applied by every member at each lease renewal (:meth:`tend`)."""
        self.max_jobs = max_jobs
        self.max_age = max_age

    def counts(self) -> Mapping[bytes, int]:
        return self._counts

    async def tend(self) -> None:
        """Keep the set within its bounds, and its counts (the metrics' and
        console's figures) up to date."""
        await self.backend.trim_failed(self.max_jobs, self.max_age)
        self._counts = await self.backend.failed_counts()

    async def records(self, function: bytes | None = None) -> list[FailedJob]:
        return await self.backend.failed_jobs(function=function)

    async def get(self, handle: bytes) -> FailedJob | None:
        parsed = parse_handle(handle)
        if parsed is None:
            return None
        found = await self.backend.failed_jobs(parsed[1], parsed[0])
        return found[0] if found else None

    async def retry(self, handle: bytes) -> bool:
        """Run the job again under its old handle and unique key, on any member."""
        parsed = parse_handle(handle)
        return parsed is not None and await self.backend.retry_failed(parsed[1], parsed[0]) > 0

    async def retry_all(self, function: bytes | None = None) -> int:
        return await self.backend.retry_failed(function=function)

    async def delete(self, handle: bytes) -> bool:
        parsed = parse_handle(handle)
        return parsed is not None and await self.backend.delete_failed(parsed[1], parsed[0]) > 0

    async def delete_all(self, function: bytes | None = None) -> int:
        return await self.backend.delete_failed(function=function)
