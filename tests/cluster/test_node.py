"""A member's lease on a manual clock over the real store (PostgreSQL and Redis,
reached through a proxy the test cuts): when its renewals fail, the member
stops claiming and forgets its unstarted claims as soon as its clock passes
the lease's trusted share, whatever the loop was doing; a renewal on the
clock once the store is back restores it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from geartrain.cluster.lease import TRUST
from geartrain.cluster.node import ClusterNode
from geartrain.protocol import PacketType as T
from server.harness import Clock, Conn, make
from store.proxy import TcpProxy

from .stores import SharedStore

pytestmark = [pytest.mark.backend]

LEASE = 10.0


async def test_a_member_whose_renewals_fail_stops_claiming_on_its_clock(
    shared_store: SharedStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "geartrain.cluster")
    proxy = await TcpProxy(*shared_store.target).start()
    clock = Clock()
    node = ClusterNode(shared_store.backend(proxy.port), lease=LEASE, clock=lambda: clock.now)
    await node.start(make(clock))
    keeper, lease = node.keeper, node.lease
    assert keeper is not None
    try:
        Conn(keeper.core, "worker").send(T.CAN_DO, b"f")
        job = keeper.core.adopt(b"H:other:c9", b"f", b"", b"x", 1, b"", 9, 0)
        keeper.held.hold(9, 1, job)  # claimed for the worker, which has not started it
        await proxy.stop()

        clock.advance(LEASE * TRUST - 0.1)
        assert lease.valid and b"H:other:c9" in keeper.core.jobs
        clock.advance(0.11)  # the watchdog, on the clock: no loop turn needed
        assert not lease.valid
        assert "Cluster lease not renewed in time: stopped claiming" in caplog.text
        assert b"H:other:c9" not in keeper.core.jobs and len(keeper.held) == 0

        await proxy.start()
        for _ in range(50):  # heartbeats on the clock, until one reaches the store
            clock.advance(lease.interval)
            await asyncio.sleep(0.1)
            if lease.valid:
                break
        assert lease.valid
    finally:
        await node.close()
        await proxy.stop()
