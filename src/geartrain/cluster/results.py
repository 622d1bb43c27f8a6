"""Kept results of background jobs in a cluster (see ``geartrain.server.results``).

A job's result is kept by the member whose worker ran it, in its memory as on
any server, and written to the shared store (:meth:`.backend.ClusterBackend.
write_results`), so that every member answers ``result HANDLE`` and the
console's route: a job held by another member reads as queued or running from
the store's job row, and once it ended its result comes from the store.  The
writes are batched and tried again at the next heartbeat if the store fails;
expired results are dropped there too (Redis expires them itself).

A function's ``keep_results`` policy keeps results here, and so does a
submission's ``keep_result`` option: its seconds travel with the job's row
(``Submission.keep``), so whichever member ends the job keeps its result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..server.changes import KeyedChanges
from ..store.records import KeptResult
from . import parse_handle
from .states import State

if TYPE_CHECKING:
    from .backend import ClusterBackend

__all__ = ["SharedResults"]

log = logging.getLogger("geartrain.cluster")


class SharedResults:
    """The shared store's side of one member's kept results; ``clock`` gives epoch
    seconds (expiry)."""

    def __init__(
        self,
        backend: ClusterBackend,
        errors: tuple[type[Exception], ...],
        clock: Callable[[], float],
    ) -> None:
        self.backend = backend
        self.errors = errors
        self.clock = clock
        self._changes = KeyedChanges[KeptResult](backend.write_results)
        self._task: asyncio.Task[Any] | None = None

    def changed(self, added: list[KeptResult], removed: list[bytes]) -> None:
        """The member's results changed (``Results.persist``): write them soon."""
        self._changes.note(added, removed)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            while self._changes:
                await self._changes.flush()
        except self.errors as error:
            log.warning("Kept results not written to the cluster's store yet: %s", error)
        finally:
            self._task = None

    async def tend(self) -> None:
        """At each heartbeat: what failed to be written, and the expired results."""
        if self._changes and self._task is None:
            await self._write()
        await self.backend.trim_results(self.clock())

    async def look_up(self, handle: bytes) -> tuple[str, KeptResult | None] | None:
        """A job not held here: queued or running from its row in the store, else
        its kept result, else None (``Results.remote``)."""
        parsed = parse_handle(handle)
        if parsed is not None:
            row = await self.backend.status(parsed[1])
            if row is not None and row[0] == parsed[0]:
                return ("running" if row[1] is State.CLAIMED else "queued"), None
        record = await self.backend.result(handle)
        if record is None or record.expires_at <= self.clock():
            return None
        return record.status, record

    async def close(self) -> None:
        """Write what is left (the member leaves)."""
        if self._task is not None:
            await self._task
        if self._changes:
            await self._write()
