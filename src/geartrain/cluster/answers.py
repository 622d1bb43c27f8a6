"""The admin answers of a cluster member that come from the shared store:
``status`` over the whole cluster, ``cluster`` (the members), and ``cancel job``
of any member's job (:class:`geartrain.server.admin.SharedAdmin`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..server.admin import Member
from . import parse_handle

if TYPE_CHECKING:
    from .backend import ClusterBackend
    from .keeper import SharedKeeper
    from .lease import Lease

__all__ = ["SharedAnswers"]


class SharedAnswers:
    """Answers for the admin commands, from one member's view of the cluster
    (``keeper``: this member's, once it has joined)."""

    def __init__(self, backend: ClusterBackend, lease: Lease) -> None:
        self.backend = backend
        self.lease = lease
        self.keeper: SharedKeeper | None = None

    async def status(self) -> bytes:
        """Jobs and running jobs of every member; the workers column counts this
        member's workers."""
        keeper = self.keeper
        assert keeper is not None
        core = keeper.core
        queues = await self.backend.queues()
        shared = {name: (total, running) for name, total, running in queues}
        held_total: dict[bytes, int] = {}
        held_running: dict[bytes, int] = {}
        for _id, _claim, job in keeper.held.items():
            name = job.function.name
            held_total[name] = held_total.get(name, 0) + 1
            if job.worker is not None:
                held_running[name] = held_running.get(name, 0) + 1
        out = []
        for f in core.functions.values():
            total, running = shared.pop(f.name, (0, 0))
            # Local foreground jobs, plus the cluster's (which count the ones held here).
            total += f.total - held_total.get(f.name, 0)
            running += f.running - held_running.get(f.name, 0)
            out.append(b"%s\t%d\t%d\t%d\n" % (f.name, total, running, len(f.workers)))
        for name, (total, running) in shared.items():
            out.append(b"%s\t%d\t%d\t0\n" % (name, total, running))
        out.append(b".\n")
        return b"".join(out)

    async def members(self) -> bytes:
        """`cluster`: id, name, seconds since start, lease seconds left, running jobs,
        and ``*`` for this member."""
        out = [
            b"%d\t%s\t%.1f\t%.1f\t%d\t%s\n"
            % (
                server,
                name.encode(errors="replace"),
                age,
                left,
                running,
                b"*" if server == self.lease.server else b"-",
            )
            for server, name, age, left, running in await self.backend.members()
        ]
        out.append(b".\n")
        return b"".join(out)

    async def member_list(self) -> list[Member]:
        """The members for the console; the lease's age from what is left of it."""
        ttl = self.lease.ttl
        return [
            Member(server, name, age, max(0.0, ttl - left), running, server == self.lease.server)
            for server, name, age, left, running in await self.backend.members()
        ]

    async def cancel(self, handle: bytes) -> bool | None:
        """The holder cancels the job as a single server does; elsewhere a queued
        job is deleted.  True if cancelled, False if another member has claimed
        it, None if there is no such job."""
        keeper = self.keeper
        assert keeper is not None
        if keeper.core.cancel(handle):
            return True
        parsed = parse_handle(handle)
        if parsed is None:
            return None
        return await self.backend.cancel(parsed[1], parsed[0])
