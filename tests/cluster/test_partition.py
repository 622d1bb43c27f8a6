"""A member cut off from the shared store stops handing out work before its lease
expires, so the partition itself makes no job run twice; on Redis it subscribes
to the wake-up channel again once the store is back."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from geartrain import Client
from gt_helpers import registered, wait_for
from store.conftest import REDIS
from store.proxy import TcpProxy

from .conftest import LEASE, StartMember
from .stores import RedisShared, SharedStore
from .test_crash import Run, worker_for

pytestmark = [pytest.mark.backend, pytest.mark.slow, pytest.mark.timeout(120)]

JOBS = 300
TRUST = 0.8  # geartrain.cluster.lease.TRUST: the share of the lease a member relies on


async def test_partitioned_member_stops_claiming(
    start_member: StartMember, shared_store: SharedStore
) -> None:
    proxy = await TcpProxy(*shared_store.target).start()
    # Started from a thread: the proxy runs on this loop, and starting waits for the server.
    cut_off = await asyncio.to_thread(start_member, via=proxy.port)
    healthy = start_member()
    runs: list[Run] = []
    workers = [worker_for(s, runs) for s in (cut_off, healthy)]
    for w in workers:
        await w.start()
    try:
        for s in (cut_off, healthy):
            await wait_for(lambda s=s: registered(s.address, "work", 1), timeout=20)
        async with Client([healthy.address]) as client:
            for i in range(JOBS):
                await client.submit_background("work", b"j%d" % i)
        await wait_for(lambda: sum(r.port == cut_off.port for r in runs) > 30, timeout=30)
        cut = time.monotonic()
        await proxy.stop()
        in_flight = {r.data for r in runs if r.port == cut_off.port and r.end > cut - 1.0}
        await asyncio.sleep(LEASE + 2)
        await proxy.start()  # the same port: the member finds its store again
        await wait_for(lambda: {b"j%d" % i for i in range(JOBS)} <= finished(runs), timeout=60)
    finally:
        for w in workers:
            w.stop(graceful=False)
        for w in workers:
            await w.wait()
        await proxy.stop()
    deadline = cut + LEASE * TRUST
    late = [
        r for r in runs if r.port == cut_off.port and deadline + 0.3 < r.start < cut + LEASE + 2
    ]
    assert not late, f"{len(late)} job(s) started on the cut-off member after its deadline"
    # Jobs it had started before its own deadline may run again elsewhere; no other job does.
    before_deadline = in_flight | {
        r.data for r in runs if r.port == cut_off.port and cut <= r.start <= deadline + 0.3
    }
    counts: dict[bytes, int] = {}
    for r in runs:
        counts[r.data] = counts.get(r.data, 0) + 1
    twice = {d for d, n in counts.items() if n > 1}
    assert twice <= before_deadline, sorted(twice - before_deadline)[:10]
    assert "stopped claiming" in cut_off.log()


def finished(runs: list[Run]) -> set[bytes]:
    return {r.data for r in runs if r.end != float("inf")}


@pytest.mark.parametrize("shared_store", [RedisShared], indirect=True)
async def test_lost_wakeup_subscription_is_renewed(
    start_member: StartMember, shared_store: RedisShared
) -> None:
    proxy = await TcpProxy(*shared_store.target).start()
    await asyncio.to_thread(start_member, via=proxy.port)
    start_member()
    channel = f"{shared_store.prefix}cluster:wake"
    client = aioredis.Redis(**REDIS)  # type: ignore[arg-type]

    async def subscribers(n: int) -> bool:
        [(_channel, count)] = await client.pubsub_numsub(channel)
        return bool(count == n)

    try:
        await wait_for(lambda: subscribers(2), timeout=10)
        await proxy.stop()
        await wait_for(lambda: subscribers(1), timeout=10)
        await proxy.start()
        await wait_for(lambda: subscribers(2), timeout=20)  # at a heartbeat
    finally:
        await client.aclose()
        await proxy.stop()
