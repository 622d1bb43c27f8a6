"""What the core asks of the parts around it, and the answers of a plain server.

The core decides; these parts keep things.  Each is reached through one narrow
interface, whatever runs behind it, so the core never asks which kind it has:

- :class:`Keeper`: where background jobs are kept: in memory only
  (:class:`InMemory`, ``-q builtin``), in a durable store
  (:class:`~.persistence.StoreWriter`) or in a cluster's shared store
  (:class:`geartrain.cluster.keeper.SharedKeeper`);
- :class:`FailedSet`: the jobs that failed for good: this server's
  (:class:`~.failed.FailedJobs`) or the cluster's;
- :class:`Observer`: who hears of each job's events (the console's metrics);
- :class:`PauseStore`: where paused functions outlive a restart (a durable
  store, or the cluster's shared store).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from mypy_extensions import mypyc_attr

if TYPE_CHECKING:
    from ..store.records import FailedJob
    from .model import Job, Peer
    from .schedules import Schedule

__all__ = ["FailedSet", "InMemory", "Keeper", "LocalKeeper", "Observer", "Observers", "PauseStore"]


class Keeper(Protocol):
    """Where background jobs are kept, as the core sees it."""

    coalesces_background: bool
    """Unique keys of background jobs coalesce in this server's table (False: in
    the shared store, where the whole cluster's jobs are)."""

    shares: bool
    """Background jobs go to a cluster's shared store, which names them
    (``JobServer.shared``): what travels with a job must go with it there."""

    def keep(self, job: Job) -> bool:
        """Keep a background job (new, turned background, or sent back from the
        failed set): True if it is kept now and may be acknowledged at once;
        False if the keeper answers later with ``JobServer.stored``,
        ``JobServer.shared`` or ``JobServer.store_failed``."""

    def forget(self, job: Job) -> None:
        """The job is over (finished, failed for good, cancelled)."""

    def retry(self, job: Job) -> bool:
        """A failed attempt is retried at ``job.when``: True if the job left this
        server for that (the cluster queues it); False to queue it here."""

    def requeue(self, job: Job) -> bool:
        """Its worker was lost and it runs again now: True if it left this server."""

    def before_hand_out(self) -> None:
        """A worker asks for a job: drop what this server may no longer hand out."""

    def hungry(self) -> None:
        """A worker went to sleep: fetch work for the idle workers, if any is kept elsewhere."""

    def status(self, peer: Peer, handle: bytes) -> bool:
        """GET_STATUS of a handle not held here: True if the keeper answers it."""

    def status_unique(self, peer: Peer, unique: bytes) -> bool:
        """GET_STATUS_UNIQUE of a unique key not held here: True if the keeper answers it."""

    def fire(self, schedule: Schedule, when: int) -> bool:
        """A recurring schedule's minute ``when`` came: True if the keeper submits
        the job (once in the cluster); False to submit it here."""


@mypyc_attr(allow_interpreted_subclasses=True)  # keepers of tests and extensions
class LocalKeeper:
    """What every keeper of this server's own jobs answers: nothing is fetched,
    claimed, answered or fired elsewhere."""

    coalesces_background = True
    shares = False

    def before_hand_out(self) -> None:
        pass

    def hungry(self) -> None:
        pass

    def status(self, peer: Peer, handle: bytes) -> bool:
        return False

    def status_unique(self, peer: Peer, unique: bytes) -> bool:
        return False

    def fire(self, schedule: Schedule, when: int) -> bool:
        return False


@mypyc_attr(allow_interpreted_subclasses=True)
class InMemory(LocalKeeper):
    """The keeper of ``-q builtin``: background jobs live in the core alone."""

    def keep(self, job: Job) -> bool:
        return True

    def forget(self, job: Job) -> None:
        pass

    def retry(self, job: Job) -> bool:
        return False

    def requeue(self, job: Job) -> bool:
        return False


class FailedSet(Protocol):
    """Background jobs that failed for good, kept for a person to look at; the
    admin commands, the console and the core all reach the set through this."""

    def keep(self, job: Job, record: FailedJob) -> None:
        """``job`` failed for good: keep ``record`` of it."""

    def bound(self, max_jobs: int, max_age: float) -> None:
        """Keep at most ``max_jobs`` records, none older than ``max_age`` seconds."""

    def counts(self) -> Mapping[bytes, int]:
        """Records per function (as last known), for the metrics."""

    async def records(self, function: bytes | None = None) -> list[FailedJob]:
        """Every record, oldest first, or one function's."""

    async def get(self, handle: bytes) -> FailedJob | None: ...

    async def retry(self, handle: bytes) -> bool:
        """Run the job again under its old handle and unique key."""

    async def retry_all(self, function: bytes | None = None) -> int: ...

    async def delete(self, handle: bytes) -> bool: ...

    async def delete_all(self, function: bytes | None = None) -> int: ...


class Observer(Protocol):
    """Who hears of each job's events (the operations console's metrics).

    ``kind`` is one of "submitted"; "completed", "failed", "exception",
    "timed_out", "worker_lost" (how an attempt on a worker ended); "retried",
    "requeued", "dropped" (what became of a failed attempt, when not failed for
    good); "cancelled".  Called once per event, never per packet."""

    def event(self, job: Job, kind: str) -> None: ...


class Observers:
    """Several observers heard as one (the metrics and the console's rates)."""

    __slots__ = ("observers",)

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    def event(self, job: Job, kind: str) -> None:
        for observer in self.observers:
            observer.event(job, kind)


class PauseStore(Protocol):
    """Where the names of paused functions are kept (see :mod:`.pauses`)."""

    async def load_paused(self) -> list[bytes]:
        """Every paused function name."""

    async def save_paused(self, name: bytes, paused: bool) -> None:
        """Keep ``name`` paused (``paused``) or not any more."""
