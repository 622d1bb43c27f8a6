"""A member's batched writes through a store outage, on a manual clock: the
submissions of a failed write are refused at once, everything else waits and
is written again :data:`~geartrain.cluster.writes.RETRY_DELAY` later by the
member's clock (each test on PostgreSQL and on Redis, cut by a proxy)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from geartrain.cluster import Submission, cluster_handle
from geartrain.cluster.backend import ClusterBackend
from geartrain.cluster.node import ClusterNode
from geartrain.cluster.states import State
from geartrain.cluster.writes import RETRY_DELAY
from geartrain.protocol import PacketType as T
from geartrain.store.records import KeptResult
from gt_helpers import wait_for
from server.harness import Clock, Conn, make
from store.proxy import TcpProxy

from .stores import SharedStore

pytestmark = [pytest.mark.backend]


async def test_writes_wait_out_an_outage_on_the_members_clock(shared_store: SharedStore) -> None:
    proxy = await TcpProxy(*shared_store.target).start()
    backend = shared_store.backend(proxy.port)
    await backend.open(lambda: None)
    clock = Clock()
    keeper = ClusterNode(backend, lease=30, clock=lambda: clock.now).attach(make(clock))
    try:
        [(job_id, _)] = await backend.submit([Submission(b"f", b"", b"x", 1, 0, b"")], b"H")
        server = await backend.register("me", 30)
        [claimed] = await backend.claim(server, [(b"f", 1)])
        await proxy.stop()  # the store is unreachable

        client = Conn(keeper.core, "client")
        client.send(T.SUBMIT_JOB_BG, b"f", b"", b"during")
        keeper.writes.ack(job_id, claimed.claim)  # the same write as the submission
        [(ptype, args)] = await answer(client)
        assert ptype == T.ERROR and args[0] == b"QUEUE_ERROR"  # refused, not kept waiting

        await proxy.start()  # the store is back; the acknowledgement waits for the clock
        clock.advance(RETRY_DELAY - 0.1)
        await asyncio.sleep(0.5)
        assert await backend.status(job_id) == (b"H", State.CLAIMED, 0, 0)
        clock.advance(0.1)
        await wait_for(lambda: _gone(backend, job_id), timeout=10)

        client.send(T.SUBMIT_JOB_BG, b"f", b"", b"after")
        [(ptype, _args)] = await answer(client)
        assert ptype == T.JOB_CREATED
        assert await backend.queues() == [(b"f", 1, 0)]  # the refused job never was
    finally:
        await proxy.stop()
        await backend.close()


async def answer(client: Conn) -> list[tuple[T, tuple[bytes, ...]]]:
    """The packets the client gets once the member has written (or failed to)."""
    got: list[tuple[T, tuple[bytes, ...]]] = []

    def arrived() -> bool:
        got.extend(client.received())
        return bool(got)

    await wait_for(arrived, timeout=10)
    return got


async def _gone(backend: ClusterBackend, job_id: int) -> bool:
    return await backend.status(job_id) is None


async def test_a_kept_result_is_in_the_store_before_its_job_leaves_it(
    shared_store: SharedStore,
) -> None:
    """A member that looks up a job must find its row or its result, never neither:
    the result the job ended with is written first, and an acknowledgement whose
    result could not be written waits with it, through an outage too."""
    proxy = await TcpProxy(*shared_store.target).start()
    backend = shared_store.backend(proxy.port)
    calls: list[str] = []
    for name in ("write_results", "ack"):
        write = getattr(backend, name)

        async def recorded(*args: Any, _write: Any = write, _name: str = name) -> Any:
            calls.append(_name)
            return await _write(*args)

        setattr(backend, name, recorded)  # the real store's call, recorded
    await backend.open(lambda: None)
    clock = Clock()
    keeper = ClusterNode(backend, lease=30, clock=lambda: clock.now).attach(make(clock))
    try:
        [(job_id, prefix)] = await backend.submit([Submission(b"f", b"", b"x", 1, 0, b"")], b"H")
        handle = cluster_handle(prefix, job_id)
        server = await backend.register("me", 30)
        [claimed] = await backend.claim(server, [(b"f", 1)])
        await proxy.stop()

        # Ended now by the wall clock, by which Redis expires the kept results itself.
        result = KeptResult(handle, b"f", "complete", b"out", 600.0, time.time())
        keeper.writes.keep_results([result], [])  # the core notes the result, then lets go
        keeper.writes.ack(job_id, claimed.claim)
        await wait_for(lambda: calls == ["write_results"], timeout=10)  # failed: no ack tried

        await proxy.start()
        clock.advance(RETRY_DELAY)
        await wait_for(lambda: _gone(backend, job_id), timeout=10)
        assert calls == ["write_results", "write_results", "ack"]
        assert await keeper.results.look_up(handle) == ("complete", result)
    finally:
        await proxy.stop()
        await backend.close()
