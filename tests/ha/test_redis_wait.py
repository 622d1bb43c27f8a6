"""``wait_replicas``: a write that adds jobs is acknowledged only once a replica
has it.  With the replica stopped (SIGSTOP: connected, but acknowledging
nothing) the store and the cluster's submissions fail instead; once it runs
again they succeed."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from geartrain.cluster import Submission
from geartrain.cluster.redis import RedisCluster
from geartrain.store import StoreError
from geartrain.store.options import store_from_url
from geartrain.store.redis import RedisStore
from store.conftest import job, unique_name
from store.dbservers import PrivateRedis

from .replicas import HOST

pytestmark = [pytest.mark.backend, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[PrivateRedis, PrivateRedis]]:
    primary, replica = PrivateRedis(), PrivateRedis()
    primary.start()
    replica.start()
    cli = ["redis-cli", "-h", HOST, "-p", str(replica.port)]
    subprocess.run([*cli, "REPLICAOF", HOST, str(primary.port)], check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while (
        "master_link_status:up"
        not in subprocess.run(
            [*cli, "INFO", "replication"], capture_output=True, text=True, check=True
        ).stdout
    ):
        assert time.monotonic() < deadline, "the replica did not connect"
        time.sleep(0.05)
    yield primary, replica
    replica.cleanup()
    primary.cleanup()


def waiting_store(primary: PrivateRedis) -> RedisStore:
    url = f"redis://{HOST}:{primary.port}/0?prefix={unique_name()}:"
    store = store_from_url(url + "&wait_replicas=1&wait_timeout_ms=300")
    assert isinstance(store, RedisStore)
    return store


def stopped(replica: PrivateRedis, stop: bool) -> None:
    assert replica.proc is not None
    replica.proc.send_signal(signal.SIGSTOP if stop else signal.SIGCONT)


async def test_the_store_waits_for_the_replica(pair: tuple[PrivateRedis, PrivateRedis]) -> None:
    primary, replica = pair
    store = waiting_store(primary)
    await store.open()
    try:
        await store.write([job(1)], [])
        stopped(replica, True)
        try:
            with pytest.raises(StoreError, match="reached 0 of 1 replica"):
                await store.write([job(2)], [])
        finally:
            stopped(replica, False)
        await store.write([job(3)], [1])
        assert [j.id for j in await store.load()] == [2, 3]  # 2 is on the master all the same
    finally:
        await store.close()


async def test_cluster_submissions_wait_for_the_replica(
    pair: tuple[PrivateRedis, PrivateRedis],
) -> None:
    primary, replica = pair
    cluster = RedisCluster(waiting_store(primary))
    await cluster.open(lambda: None)
    jobs = [Submission(b"f", b"", b"data", 1, 0, b"")]
    try:
        assert len(await cluster.submit(jobs, b"H:x")) == 1
        stopped(replica, True)
        try:
            with pytest.raises(StoreError, match="reached 0 of 1 replica"):
                await cluster.submit(jobs, b"H:x")
        finally:
            stopped(replica, False)
        assert len(await cluster.submit(jobs, b"H:x")) == 1
    finally:
        await cluster.close()
