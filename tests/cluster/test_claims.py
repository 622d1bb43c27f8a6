"""The lease rule at hand-out, on a manual clock over the real store (PostgreSQL
and Redis): a member whose loop stalled past its lease (no timer has run) hands
out none of the jobs it had claimed, and gives them back to the cluster, so that
a lapse only this member saw (its renewal came late) leaves none of them claimed
by a member that is alive."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from geartrain.cluster import Submission, cluster_handle
from geartrain.cluster.keeper import SharedKeeper
from geartrain.cluster.lease import TRUST
from geartrain.cluster.node import ClusterNode
from geartrain.protocol import PacketType as T
from gt_helpers import wait_for
from server.harness import Clock, Conn, make

from .stores import SharedStore

pytestmark = [pytest.mark.backend]

LEASE = 10.0
"""Seconds: the store's own expiry (on its clock) stays far ahead of the test's."""


@pytest.fixture
async def member(shared_store: SharedStore) -> AsyncIterator[tuple[ClusterNode, Clock]]:
    """A member on the real store, its lease and timers on a manual clock."""
    clock = Clock()
    node = ClusterNode(shared_store.backend(), lease=LEASE, clock=lambda: clock.now)
    await node.start(make(clock))
    yield node, clock
    await node.close()


async def claim(node: ClusterNode, count: int) -> list[bytes]:
    """Submit ``count`` jobs to the store and claim them for this member, as its
    claimer would; their handles, in order."""
    keeper = node.keeper
    assert keeper is not None
    jobs = [Submission(b"resize", b"", b"img%d" % i, 1, 0, b"") for i in range(count)]
    await node.backend.submit(jobs, b"H:other")
    handles = []
    for c in await node.backend.claim(node.lease.server, [(b"resize", count)]):
        handle = cluster_handle(c.prefix, c.id)
        job = keeper.core.adopt(
            handle, c.function, c.unique, c.data, c.priority, c.reducer, c.id, c.retries
        )
        keeper.held.hold(c.id, c.claim, job)
        handles.append(handle)
    return handles


def keeper_of(node: ClusterNode) -> SharedKeeper:
    assert node.keeper is not None
    return node.keeper


async def test_claimed_jobs_are_handed_out_while_the_lease_holds(
    member: tuple[ClusterNode, Clock],
) -> None:
    node, clock = member
    first, second = await claim(node, 2)
    worker = Conn(keeper_of(node).core, "worker")
    worker.send(T.CAN_DO, b"resize")
    clock.now += LEASE * TRUST - 0.1
    worker.send(T.GRAB_JOB)
    worker.send(T.GRAB_JOB)
    assert [args[0] for _t, args in worker.received()] == [first, second]


async def test_a_member_stalled_past_its_lease_hands_out_no_claimed_job_and_gives_it_back(
    member: tuple[ClusterNode, Clock], shared_store: SharedStore
) -> None:
    node, clock = member
    keeper = keeper_of(node)
    core = keeper.core
    running, waiting = await claim(node, 2)
    worker = Conn(core, "worker")
    worker.send(T.CAN_DO, b"resize")
    worker.send(T.GRAB_JOB)
    assert worker.one(T.JOB_ASSIGN)[0] == running
    # The loop stalls past the lease's trusted share: no timer runs before the
    # next packet.  The store's expiry, on its own clock, is still far ahead.
    clock.now += LEASE * TRUST + 0.01
    worker.send(T.GRAB_JOB)
    worker.one(T.NO_JOB)
    # The unstarted claim is the cluster's again; the running one runs on (its
    # acknowledgement is fenced by the claim number in the store).
    assert waiting not in core.jobs and running in core.jobs
    assert [job.handle for _id, _claim, job in keeper.held.items()] == [running]

    async def given_back() -> bool:
        return await shared_store.held_by(node.lease.server) == {running}

    await wait_for(given_back, timeout=10)
    # A foreground job of this server's own is handed out as ever.
    client = Conn(core, "client")
    handle = client.submit(b"resize", b"local")
    worker.send(T.GRAB_JOB)
    assert worker.one(T.JOB_ASSIGN)[0] == handle
