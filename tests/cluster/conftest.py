"""Cluster fixtures: the shared store of the test's own (a PostgreSQL database or a
Redis key prefix; every cluster test runs on both), and cluster members."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import asyncpg  # type: ignore[import-untyped]
import pytest
import redis.asyncio as aioredis

import serverproc
from geartrain.cluster.backend import ClusterBackend
from geartrain.cluster.postgres import PostgresCluster
from geartrain.cluster.redis import RedisCluster
from geartrain.store.redis import RedisStore
from serverproc import ServerProc
from store.conftest import (
    PG,
    REDIS,
    database_services,  # noqa: F401  (the services, here too)
    delete_redis_keys,
    run_in_thread,
    unique_name,
)

LEASE = 3.0
"""Seconds of a test server's lease: takeover within about this plus one sweep."""


class SharedStore:
    """Where one test's cluster keeps its jobs."""

    kind = ""
    target: tuple[str, int] = ("", 0)
    """Host and port of the service (a proxy forwards there)."""

    def flags(self, port: int | None = None) -> list[str]:
        """The server flags to join; ``port`` reaches the service through a proxy."""
        raise NotImplementedError

    def backend(self, port: int | None = None) -> ClusterBackend:
        """The store as a member sees it (not yet opened); ``port`` reaches the
        service through a proxy."""
        raise NotImplementedError

    async def held_by(self, server: int) -> set[bytes]:
        """Handles of the jobs a server had claimed and not acknowledged: its running
        jobs and the ones it held for its workers, as the store sees them."""
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError


class PostgresShared(SharedStore):
    kind = "postgres"

    def __init__(self) -> None:
        self.target = (str(PG["host"]), int(PG["port"]))  # type: ignore[call-overload]
        self.database = unique_name("gt_cluster")
        run_in_thread(self._run(f"CREATE DATABASE {self.database}"))

    def flags(self, port: int | None = None) -> list[str]:
        return ["-q", "postgres", "--libpq-conninfo", self._conninfo(port)]

    def _conninfo(self, port: int | None = None) -> str:
        where = f"host={PG['host']} port={port or PG['port']} user={PG['user']}"
        return f"{where} dbname={self.database}"

    def backend(self, port: int | None = None) -> ClusterBackend:
        return PostgresCluster(self._conninfo(port), "queue")  # the servers' default table

    async def held_by(self, server: int) -> set[bytes]:
        conn = await asyncpg.connect(database=self.database, **PG)
        try:
            rows = await conn.fetch(
                "SELECT prefix, id FROM queue_cluster_jobs WHERE state = 2 AND owner = $1", server
            )
        finally:
            await conn.close()
        return {bytes(r[0]) + b":c%d" % r[1] for r in rows}

    async def _run(self, sql: str) -> None:
        conn = await asyncpg.connect(database="test", **PG)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def cleanup(self) -> None:
        run_in_thread(self._run(f"DROP DATABASE {self.database} WITH (FORCE)"))


class RedisShared(SharedStore):
    kind = "redis"

    def __init__(self) -> None:
        self.target = (str(REDIS["host"]), int(REDIS["port"]))  # type: ignore[call-overload]
        self.prefix = unique_name("gt_cluster") + ":"

    def flags(self, port: int | None = None) -> list[str]:
        host, default = self.target
        where = ["--redis-server", host, "--redis-port", str(port or default)]
        return ["-q", "redis", *where, "--redis-prefix", self.prefix]

    def backend(self, port: int | None = None) -> ClusterBackend:
        host, default = self.target
        return RedisCluster(RedisStore(host, port or default, prefix=self.prefix))

    async def held_by(self, server: int) -> set[bytes]:
        client = aioredis.Redis(**REDIS)  # type: ignore[arg-type]
        base = f"{self.prefix}cluster:"
        try:
            ids = await client.smembers(f"{base}owned:{server}")  # type: ignore[misc]
            handles = set()
            for i in ids:
                prefix = await client.hget(f"{base}job:{int(i)}", "prefix")  # type: ignore[misc]
                if prefix is not None:
                    handles.add(prefix + b":c%d" % int(i))
            return handles
        finally:
            await client.aclose()

    def cleanup(self) -> None:
        run_in_thread(delete_redis_keys(self.prefix))


@pytest.fixture(params=[PostgresShared, RedisShared], ids=["postgres", "redis"])
def shared_store(request: pytest.FixtureRequest) -> Iterator[SharedStore]:
    """A fresh PostgreSQL database or Redis key prefix, removed after the test."""
    store: SharedStore = request.param()
    yield store
    store.cleanup()


StartMember = Callable[..., ServerProc]


@pytest.fixture
def start_member(shared_store: SharedStore) -> Iterator[StartMember]:
    """Start servers of one cluster (``via=PORT`` reaches the store through a proxy)."""
    started: list[ServerProc] = []

    def start(*args: str, via: int | None = None, port: int | None = None) -> ServerProc:
        argv = [*shared_store.flags(via), "--cluster"]
        argv += ["--cluster-lease", str(LEASE), "--verbose", "INFO", *args]
        server = serverproc.start_geartrain(argv, port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.cleanup()
