"""The cluster's failed-job set, as the admin commands and the console reach it.

Jobs that failed for good on any server go into one set in the shared store
(see :meth:`.backend.ClusterBackend.fail`), so every member answers ``show failed
jobs``, ``retry failed`` and ``delete failed`` (and the console's views) the
same, from the store.  The methods are those of the single server's
:class:`~geartrain.server.failures.FailedJobs`, awaited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..server.admin import ERR_UNKNOWN_JOB, OK, failed_listing
from ..server.failures import FailedJob
from . import parse_handle

if TYPE_CHECKING:
    from ..server.admin import AdminCommands
    from ..server.jobs import Peer
    from .backend import ClusterBackend

__all__ = ["SharedFailedJobs"]

ReplyLater = Callable[["Peer", Awaitable[bytes]], bytes]


class SharedFailedJobs:
    """The failed set shared by the members of a cluster."""

    def __init__(self, backend: ClusterBackend) -> None:
        self.backend = backend

    def install(self, admin: AdminCommands, reply_later: ReplyLater) -> None:
        """Answer the failed-set admin commands from the shared set."""

        def show(peer: Peer, function: bytes | None) -> bytes:
            return reply_later(peer, self._listing(function))

        def change(peer: Peer, action: bytes, handle: bytes | None, name: bytes | None) -> bytes:
            return reply_later(peer, self._change(action, handle, name))

        admin.show_failed = show
        admin.change_failed = change

    async def _listing(self, function: bytes | None) -> bytes:
        return failed_listing(await self.records(function))

    async def _change(self, action: bytes, handle: bytes | None, function: bytes | None) -> bytes:
        retry = action == b"retry"
        if handle is None:
            count = await (self.retry_all(function) if retry else self.delete_all(function))
            return b"OK %d\n" % count
        done = await (self.retry(handle) if retry else self.delete(handle))
        return OK if done else ERR_UNKNOWN_JOB

    # -- the interface of FailedJobs, awaited --------------------------------------

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
