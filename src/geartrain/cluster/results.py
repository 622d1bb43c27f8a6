"""Kept results of background jobs in a cluster (see ``geartrain.server.results``).

A job's result is kept by the member whose worker ran it, in its memory as on
any server, and written to the shared store by that member's writes
(:meth:`.writes.Writes.keep_results`), before the job leaves the store: every
member answers ``result HANDLE`` and the console's route, a job held by another
member reading as queued or running from the store's job row, and once it ended
its result coming from the store.  Expired results are dropped at each heartbeat
(Redis expires them itself).

A function's ``keep_results`` policy keeps results here, and so does a
submission's ``keep_result`` option: its seconds travel with the job's row
(``Submission.keep``), so whichever member ends the job keeps its result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..store.records import KeptResult
from . import parse_handle
from .states import State

if TYPE_CHECKING:
    from .backend import ClusterBackend

__all__ = ["SharedResults"]


class SharedResults:
    """The shared store's kept results, as one member reads them; ``clock`` gives
    epoch seconds (expiry)."""

    def __init__(self, backend: ClusterBackend, clock: Callable[[], float]) -> None:
        self.backend = backend
        self.clock = clock

    async def tend(self) -> None:
        """At each heartbeat: drop the expired results."""
        await self.backend.trim_results(self.clock())

    async def look_up(self, handle: bytes) -> tuple[str, KeptResult | None] | None:
        """A job not held here: queued or running from its row in the store, else
        its kept result, else None (``Results.remote``).  The row is read first:
        a job's result is written before its row goes, so one of them is found."""
        parsed = parse_handle(handle)
        if parsed is not None:
            row = await self.backend.status(parsed[1])
            if row is not None and row[0] == parsed[0]:
                return ("running" if row[1] is State.CLAIMED else "queued"), None
        record = await self.backend.result(handle)
        if record is None or record.expires_at <= self.clock():
            return None
        return record.status, record
