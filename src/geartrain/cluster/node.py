"""One server's membership of a cluster: joining, the lease and its heartbeat.

A member joins with a lease in the shared store and renews it :data:`RENEWALS
<.lease.RENEWALS>` times per lease period; each renewal (a heartbeat) also
sweeps for members whose lease expired and rescues their jobs
(:mod:`.rescue`), renews a lost wake-up subscription, writes the progress of
running jobs and tends the shared failed set.  When its own lease lapses
without a renewal it stops claiming and forgets the jobs it had claimed but not
started; when it finds its lease gone it joins again under a new identity.

The core's side is the keeper (:mod:`.keeper`), made when the member joins:
its claims, claimer, writes and failed set.  Every timer goes through the
core's ``call_later`` and every lease rule through the lease's clock, so a test
can drive a member on a manual clock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import parse_handle
from .answers import SharedAnswers
from .deadline import with_deadline
from .keeper import SharedKeeper
from .lease import Lease
from .rescue import rescue
from .timing import sleep

if TYPE_CHECKING:
    from ..server.core import JobServer
    from ..store.records import SharedJob, SharedQuery
    from .backend import ClusterBackend
    from .rescue import Rescued

__all__ = ["DEFAULT_LEASE", "ClusterNode"]

log = logging.getLogger("geartrain.cluster")

T = TypeVar("T")

DEFAULT_LEASE = 10.0
"""Seconds a server's lease lasts; its jobs are taken over this long (plus one
sweep) after it dies."""

CLOSE_TIMEOUT = 10.0
"""Seconds a clean stop waits for the writes it owes."""


class ClusterNode:
    """This server's membership of the cluster, between the core and the shared store."""

    def __init__(
        self,
        backend: ClusterBackend,
        *,
        lease: float = DEFAULT_LEASE,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = Lease(lease, clock)
        self.backend = with_deadline(backend, self.lease.call_timeout)
        self.errors = backend.errors
        self.name = name or f"{socket.gethostname()} pid {os.getpid()}"
        self.answers = SharedAnswers(self.backend, self.lease)  # for the admin commands
        self.keeper: SharedKeeper | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._watchdog: Any = None
        self.trouble = ""
        """Why the last heartbeat failed ("" once one succeeds): the store's state."""
        self._pause_writes = 0  # pause changes sent to the store, for follow_pauses
        self._pause_saving = 0  # of which still on their way

    @property
    def description(self) -> str:
        return self.backend.description

    @property
    def primary(self) -> str | None:
        """The shared store's server that takes the writes, once known."""
        return self.backend.primary

    # -- life -------------------------------------------------------------------

    async def start(self, core: JobServer) -> None:
        """Join the cluster: tables, wake-ups, a lease; then keep the core's
        background jobs and failed set."""
        try:
            await self.backend.open(self._wake)
            keeper = self.attach(core)
            await self._renew()
            await self.follow_pauses()
        except self.errors as error:
            await self.backend.close()
            raise OSError(f"{self.backend.description}: {type(error).__name__}: {error}") from error
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat(keeper))
        keeper.claimer.poll()
        log.info("Joined the cluster as server %d (%s)", self.lease.server, self.name)

    def attach(self, core: JobServer) -> SharedKeeper:
        """From now on the core keeps its background jobs and failed jobs in the cluster."""
        keeper = self.keeper = SharedKeeper(core, self.backend, self.lease, self.errors)
        self.answers.keeper = keeper
        core.keeper = keeper
        # Kept results go to the shared store too: by policy, or by the submission's
        # opt-in, which travels with its job's row (see .results).
        core.results.persist = keeper.writes.keep_results
        core.results.remote = keeper.results.look_up
        core.use_failed(keeper.failed)
        core.pause_store = self
        return keeper

    async def close(self) -> None:
        """Leave: finish the writes, give back unstarted jobs, drop the lease."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        keeper = self.keeper
        try:
            if keeper is not None:
                keeper.claimer.stop()
                keeper.held.drop_unstarted()
                await asyncio.wait_for(keeper.writes.flush(), timeout=CLOSE_TIMEOUT)
            if self.lease.server:
                await self.backend.leave(self.lease.server)
        except self.errors + (asyncio.CancelledError,) as error:
            log.error("Leaving the cluster uncleanly: %s", error)
        await self.backend.close()

    async def live_members(self) -> int | None:
        """Members whose lease is valid, as the shared store shows them (for the
        metrics); None before this server has joined or if the store does not answer."""
        members = await self._ask(self.backend.members)
        if members is None:
            return None
        return sum(1 for _id, _name, _age, left, _running in members if left > 0)

    async def shared_queues(self) -> list[tuple[bytes, int, int]] | None:
        """(function, jobs, running) over the shared store (for the metrics); None
        before this server has joined or if the store does not answer."""
        return await self._ask(self.backend.queues)

    async def list_jobs(self, query: SharedQuery) -> tuple[int, bool, list[SharedJob]]:
        """A page of the shared jobs for the console: (total, exact, jobs).  Within
        the store's deadline; raises what a failing store raises."""
        return await self.backend.list_jobs(query)

    async def shared_job(self, handle: bytes, preview: int) -> SharedJob | None:
        """A shared job by its handle (None for a server's own handles), as for
        :meth:`list_jobs`."""
        parsed = parse_handle(handle)
        if parsed is None:
            return None
        return await self.backend.job(parsed[1], parsed[0], preview)

    async def _ask(self, call: Callable[[], Awaitable[T]]) -> T | None:
        if self.keeper is None:
            return None
        try:
            return await call()
        except self.errors:
            return None

    def _wake(self) -> None:
        """Jobs were queued somewhere in the cluster: claim for idle workers."""
        if self.keeper is not None:
            self.keeper.claimer.kick()

    # -- the heartbeat ------------------------------------------------------------

    async def _beat(self, keeper: SharedKeeper) -> None:
        while True:
            await sleep(keeper.call_later, self.lease.interval)
            try:
                await self.heartbeat()
            except self.errors as error:
                log.warning("Cluster heartbeat failed: %s", error)
                self.trouble = f"{type(error).__name__}: {error}"
            else:
                self.trouble = ""

    async def heartbeat(self) -> None:
        """Renew the lease, sweep for dead members, and keep what the store shows
        of this member up to date."""
        keeper = self.keeper
        assert keeper is not None
        await self._renew()
        await self.sweep()
        if not self.backend.listening:
            await self.backend.listen(self._wake)
        changed = keeper.held.progress_changes()
        if changed:
            await self.backend.progress(changed)
        await keeper.failed.tend()
        await keeper.results.tend()
        await self.follow_pauses()

    # -- paused functions: the same on every member ------------------------------

    async def load_paused(self) -> list[bytes]:
        return await self.backend.paused()

    async def save_paused(self, name: bytes, paused: bool) -> None:
        """A pause or resume asked of this member: for every member (each follows
        at its next heartbeat)."""
        self._pause_writes += 1
        self._pause_saving += 1
        try:
            await self.backend.set_paused(name, paused)
        finally:
            self._pause_saving -= 1

    async def follow_pauses(self) -> None:
        """Pause and resume as the shared store says (unless this member changed a
        pause meanwhile: what was read may predate it; the next heartbeat reads again)."""
        keeper = self.keeper
        assert keeper is not None
        writes = self._pause_writes
        names = await self.backend.paused()
        if self._pause_saving or writes != self._pause_writes:
            return
        paused, resumed = keeper.core.pauses.replace(names)
        for name, what in [(n, "paused") for n in paused] + [(n, "resumed") for n in resumed]:
            log.info("Function %s %s in the cluster", name.decode(errors="replace"), what)

    async def sweep(self) -> Rescued | None:
        """Rescue the jobs of members whose lease expired, by the core's retry
        rule (:mod:`.rescue`); None if another member is sweeping."""
        keeper = self.keeper
        assert keeper is not None
        core = keeper.core
        return await rescue(
            self.backend, self.lease.ttl, core.policies, core.config.job_retries, core.clock()
        )

    # -- the lease ----------------------------------------------------------------

    async def _renew(self) -> None:
        lease = self.lease
        sent = lease.clock()
        if lease.server and not await self.backend.renew(lease.server, lease.ttl):
            log.error(
                "Lost the cluster lease of server %d (expired); its running jobs may run again"
                " elsewhere. Joining again.",
                lease.server,
            )
            if self.keeper is not None:
                self.keeper.held.drop_unstarted()
            lease.lost()
            sent = lease.clock()
        if not lease.server:
            lease.granted(await self.backend.register(self.name, lease.ttl), sent)
            log.info("Cluster lease granted: server %d", lease.server)
        else:
            lease.granted(lease.server, sent)
        self._arm_watchdog()
        self._wake()

    def _arm_watchdog(self) -> None:
        keeper = self.keeper
        assert keeper is not None
        if self._watchdog is not None:
            self._watchdog.cancel()
        # A little late rather than early: event loop timers may fire early.
        delay = max(0.0, self.lease.deadline - self.lease.clock()) + 0.01
        self._watchdog = keeper.call_later(delay, self._check_deadline)

    def _check_deadline(self) -> None:
        """Tidy up when the lease lapses (what the core holds is checked at every
        hand-out anyway: see :meth:`.Claims.check`)."""
        self._watchdog = None
        if self.lease.valid:
            self._arm_watchdog()
        elif self.lease.server and self.keeper is not None:
            log.error("Cluster lease not renewed in time: stopped claiming")
            self.keeper.held.check()
