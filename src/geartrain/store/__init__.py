"""Durable queues: the storage interface and the table of backends.

A store keeps the background jobs the server has acknowledged, so that they
survive a crash or restart.  The server batches its writes (group commit): one
call to :meth:`Store.write` carries every job submitted and every job finished
since the previous call, and must apply them in one transaction.  The server
sends JOB_CREATED only after ``write`` returns.

Each backend lives in its own module and is named in :data:`STORES`;
``geartrain.store.options`` builds one from the command line.  ``str(store)``
says where the queue is (without passwords), for the startup log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from .records import FailedJob, KeptResult, StoredJob

__all__ = ["STORES", "StoreError", "StoreFull", "StoreHealth", "Store", "StoredJob", "store_class"]


class StoreError(Exception):
    """The store could not be reached or refused a write."""


class StoreFull(StoreError):
    """The store has no room for new jobs (a full disk).  It still takes deletions:
    they are how it gets room back."""


class StoreHealth(NamedTuple):
    """What a store that works in the background (SQLite: its fsyncs, its log's
    checkpoints, the room left on its disk) reports of itself, from
    ``health()``; the server decides what to make of it."""

    problem: StoreError | None
    """What is wrong now (a :class:`StoreFull` when it is the lack of room), or None."""
    failed_syncs: int
    """Background fsyncs that failed since the store was opened."""
    unsynced: int
    """Background fsync rounds that failed in a row (0 once one succeeds)."""


@runtime_checkable
class Store(Protocol):
    """What every backend implements."""

    async def open(self) -> None:
        """Connect and create tables or keys as needed.  Raises StoreError."""

    async def load(self) -> list[StoredJob]:
        """Every stored job, in submission order (ascending ``id``)."""

    async def write(self, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        """Store ``added`` and delete the jobs whose ids are in ``done``, atomically.

        No id is in both (the server's writer leaves out a job that ended before
        its add was written: it needs neither).  Ids in ``done`` that are not
        stored are ignored; an id in ``added`` that is
        already stored is an error and fails the whole write (a store that
        logs, SQLite at the crash level, does not look: the server never
        reuses an id).

        Raises StoreError if nothing was written; after a successful return the
        change is durable.  (After a StoreError from a lost connection the
        outcome can be unknown: the batch may have been committed.)
        """

    async def check(self) -> None:
        """Raise StoreError unless the store takes writes now: asked in an outage
        with nothing to write, so the server knows when it is over."""

    async def load_failed(self) -> list[FailedJob]:
        """The failed-job set, oldest first."""

    async def write_failed(self, added: Sequence[FailedJob], removed: Sequence[bytes]) -> None:
        """Store (or replace) ``added`` and delete the handles in ``removed``, atomically."""

    async def load_paused(self) -> list[bytes]:
        """The names of the paused functions."""

    async def save_paused(self, name: bytes, paused: bool) -> None:
        """Keep ``name`` paused, or (``paused`` False) no longer; durable on return."""

    async def load_results(self) -> list[KeptResult]:
        """The kept results of background jobs (pending ones too), oldest first."""

    async def write_results(self, added: Sequence[KeptResult], removed: Sequence[bytes]) -> None:
        """Store (or replace) ``added`` and delete the handles in ``removed``, atomically."""

    async def close(self) -> None:
        """Release connections; the store may be opened again."""


STORES: dict[str, str] = {
    # name (as given to -q, case-insensitive) -> "module:class"
    "libsqlite3": ".sqlite:SqliteStore",
    "sqlite": ".sqlite:SqliteStore",
    "libpq": ".postgres:PostgresStore",
    "postgres": ".postgres:PostgresStore",
    "postgresql": ".postgres:PostgresStore",
    "mysql": ".mysql:MysqlStore",
    "mariadb": ".mysql:MysqlStore",
    "redis": ".redis:RedisStore",
}
"""Backends by queue-type name; gearmand's names and short aliases."""


def store_class(name: str) -> type[Store]:
    """Resolve a queue-type name to its backend class.

    Raises:
        KeyError: no backend has that name.
    """
    import importlib

    target = STORES[name.lower()]
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name, __name__)
    cls: type[Store] = getattr(module, class_name)
    return cls
