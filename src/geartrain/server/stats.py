"""What happened to jobs since the server started: counters for the metrics, and
the one place that counts each event and tells the observer of it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import Job
    from .ports import Observer

__all__ = ["STAT_NAMES", "Events", "Stats"]

STAT_NAMES = (
    "created",
    "coalesced",
    "completed",
    "failed",
    "exceptions",
    "requeued",
    "dropped",
    "timed_out",
    "cancelled",
    "restored",
    "retried",
    "limit_connections",
    "limit_input",
    "limit_output",
    "limit_queue",
    "limit_function",
    "refused_submit",
    "refused_work",
    "refused_status",
    "refused_admin",
)
"""The counters of :class:`Stats`, in the order metrics list them."""


class Stats:
    """Counters since start, for metrics: what happened to jobs, not what is queued."""

    __slots__ = STAT_NAMES

    def __init__(self) -> None:
        self.created = self.coalesced = self.completed = self.failed = 0
        self.exceptions = self.requeued = self.dropped = self.timed_out = 0
        self.cancelled = self.restored = self.retried = 0
        # Times a resource limit was reached (see .limits).
        self.limit_connections = self.limit_input = self.limit_output = self.limit_queue = 0
        self.limit_function = 0
        # Requests the access rules refused, by kind.
        self.refused_submit = self.refused_work = self.refused_status = self.refused_admin = 0

    def refused(self, kind: str) -> None:
        """Count a request of ``kind`` ("submit", "work", "status" or "admin") the
        access rules refused."""
        if kind == "submit":
            self.refused_submit += 1
        elif kind == "work":
            self.refused_work += 1
        elif kind == "status":
            self.refused_status += 1
        else:
            self.refused_admin += 1


class Events:
    """A job's events, each counted once in :class:`Stats` and told to the
    observer (the console's metrics) once, never per packet."""

    __slots__ = ("stats", "observer")

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.observer: Observer | None = None

    def _tell(self, job: Job, kind: str) -> None:
        if self.observer is not None:
            self.observer.event(job, kind)

    def submitted(self, job: Job) -> None:
        self.stats.created += 1
        self._tell(job, "submitted")

    def completed(self, job: Job) -> None:
        self.stats.completed += 1
        self._tell(job, "completed")

    def failed(self, job: Job) -> None:
        self.stats.failed += 1
        self._tell(job, "failed")

    def exception(self, job: Job) -> None:
        self.stats.exceptions += 1
        self._tell(job, "exception")

    def timed_out(self, job: Job) -> None:
        self.stats.timed_out += 1
        self._tell(job, "timed_out")

    def worker_lost(self, job: Job) -> None:
        self._tell(job, "worker_lost")

    def requeued(self, job: Job) -> None:
        self.stats.requeued += 1
        self._tell(job, "requeued")

    def retried(self, job: Job) -> None:
        self.stats.retried += 1
        self._tell(job, "retried")

    def dropped(self, job: Job) -> None:
        self.stats.dropped += 1
        self._tell(job, "dropped")

    def cancelled(self, job: Job) -> None:
        self.stats.cancelled += 1
        self._tell(job, "cancelled")
