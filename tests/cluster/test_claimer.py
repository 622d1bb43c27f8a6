"""A member's claims on a manual clock over the real store (PostgreSQL and Redis):
a sleeping worker gets a job claimed for it, and a job held for a worker that
left goes back to the cluster at the next poll of the member's clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from geartrain.cluster import Submission
from geartrain.cluster.backend import ClusterBackend
from geartrain.cluster.claimer import POLL
from geartrain.cluster.keeper import SharedKeeper
from geartrain.cluster.node import ClusterNode
from geartrain.cluster.states import State
from geartrain.protocol import PacketType as T
from gt_helpers import wait_for
from server.harness import Clock, Conn, make
from store.proxy import TcpProxy

from .stores import SharedStore

pytestmark = [pytest.mark.backend]


@pytest.fixture
async def store(shared_store: SharedStore) -> AsyncIterator[ClusterBackend]:
    backend = shared_store.backend()
    await backend.open(lambda: None)
    yield backend
    await backend.close()


async def test_a_job_held_for_a_worker_that_left_goes_back_at_the_next_poll(
    shared_store: SharedStore, store: ClusterBackend
) -> None:
    clock = Clock()
    node = ClusterNode(shared_store.backend(), lease=30, clock=lambda: clock.now)
    await node.start(make(clock))  # the poll's timer is on the clock
    try:
        keeper = node.keeper
        assert isinstance(keeper, SharedKeeper)
        [(job_id, _)] = await store.submit([Submission(b"f", b"", b"x", 1, 0, b"")], b"H")
        worker = Conn(keeper.core, "worker")
        worker.send(T.CAN_DO, b"f")
        worker.send(T.PRE_SLEEP)  # a claim for it, at once

        def woken() -> bool:
            return [p for p, _args in worker.received()] == [T.NOOP]

        await wait_for(woken, timeout=10)
        assert await store.status(job_id) == (b"H", State.CLAIMED, 0, 0)
        worker.leave()
        await asyncio.sleep(0.5)
        assert await store.status(job_id) == (b"H", State.CLAIMED, 0, 0)  # until the poll
        clock.advance(POLL)

        async def given_back() -> bool:
            return await store.status(job_id) == (b"H", State.WAITING, 0, 0)

        await wait_for(given_back, timeout=10)
    finally:
        await node.close()


async def test_a_claim_whose_answer_was_lost_is_given_back(
    shared_store: SharedStore, store: ClusterBackend
) -> None:
    """The store took a claim but the member never heard (its link broke): the
    jobs must not stay claimed by a live member that does not hold them."""
    proxy = await TcpProxy(*shared_store.target).start()
    clock = Clock()
    node = ClusterNode(shared_store.backend(proxy.port), lease=30, clock=lambda: clock.now)
    await node.start(make(clock))
    try:
        keeper = node.keeper
        assert isinstance(keeper, SharedKeeper)
        worker = Conn(keeper.core, "worker")
        worker.send(T.CAN_DO, b"f")
        await proxy.stop()
        worker.send(T.PRE_SLEEP)  # the member's claim fails: no answer
        await wait_for(lambda: keeper.claimer._task is None, timeout=30)
        # What the lost answer would have said: the store gave the member a job.
        [(job_id, _)] = await store.submit([Submission(b"f", b"", b"x", 1, 0, b"")], b"H")
        [claimed] = await store.claim(node.lease.server, [(b"f", 1)])
        assert claimed.id == job_id and job_id not in {i for i, _c, _j in keeper.held.items()}
        await proxy.start()
        for _ in range(20):  # polls on the clock, until one checks the store, gives the job
            clock.advance(POLL)  # back and claims it again for the sleeping worker
            await asyncio.sleep(0.2)
            if job_id in {i for i, _c, _j in keeper.held.items()}:
                break
        assert job_id in {i for i, _c, _j in keeper.held.items()}
        assert T.NOOP in [p for p, _args in worker.received()]
    finally:
        await node.close()
        await proxy.stop()
