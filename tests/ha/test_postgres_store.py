"""The PostgreSQL store on a primary and its standby named by one multi-host
URL: what it does across a failover, without a server around it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from geartrain.cluster.postgres import PostgresCluster
from geartrain.store import StoreError
from geartrain.store.durability import Durability
from geartrain.store.postgres import PostgresStore
from store.conftest import job

from .replicas import HOST, PostgresReplicas

pytestmark = [pytest.mark.backend, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def pair() -> Iterator[PostgresReplicas]:
    """Failed over by the first test that needs it; the tests after see the result."""
    replicas = PostgresReplicas(sync=True).start()
    yield replicas
    replicas.cleanup()


async def test_writes_follow_the_promoted_standby(pair: PostgresReplicas) -> None:
    # Power: each commit waits for the synchronous standby (synchronous_commit=on);
    # at the crash level (off) a commit returns before its WAL leaves the primary.
    store = PostgresStore(pair.conninfo("test"), "ha_queue", durability=Durability.POWER)
    await store.open()
    try:
        primary, standby = pair.ports
        assert store.primary == f"{HOST}:{primary}"
        await store.write([job(1), job(2)], [])
        pair.kill_primary()
        # No server takes writes: refused at once, as a StoreError (QUEUE_ERROR).
        with pytest.raises(StoreError):
            await store.write([job(3)], [])
        pair.promote()
        # The same store, no restart: the standby had every acknowledged write.
        await store.write([job(4)], [1])
        assert store.primary == f"{HOST}:{standby}"
        assert [j.id for j in await store.load()] == [2, 4]
    finally:
        await store.close()


async def test_the_cluster_store_reports_the_primary(pair: PostgresReplicas) -> None:
    cluster = PostgresCluster(pair.conninfo("test"), "ha_queue")
    await cluster.open(lambda: None)
    try:
        assert cluster.primary == f"{HOST}:{pair.port}"
    finally:
        await cluster.close()
