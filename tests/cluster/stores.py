"""Where a test's cluster (or single server) keeps its jobs: a PostgreSQL database or a
Redis key prefix of its own, on the shared service or on a private one."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as aioredis

from geartrain.cluster.backend import ClusterBackend
from geartrain.cluster.postgres import PostgresCluster
from geartrain.cluster.redis import RedisCluster
from geartrain.store.redis import RedisStore
from store.conftest import PG, REDIS, delete_redis_keys, run_in_thread, unique_name


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

    def __init__(self, address: dict[str, object] | None = None) -> None:
        self.address = address or PG
        self.target = (str(self.address["host"]), int(self.address["port"]))  # type: ignore[call-overload]
        self.database = unique_name("gt_cluster")
        run_in_thread(self._run(f"CREATE DATABASE {self.database}"))

    def flags(self, port: int | None = None) -> list[str]:
        return ["-q", "postgres", "--libpq-conninfo", self._conninfo(port)]

    def _conninfo(self, port: int | None = None) -> str:
        a = self.address
        where = f"host={a['host']} port={port or a['port']} user={a['user']}"
        return f"{where} dbname={self.database}"

    def backend(self, port: int | None = None) -> ClusterBackend:
        return PostgresCluster(self._conninfo(port), "queue")  # the servers' default table

    async def held_by(self, server: int) -> set[bytes]:
        conn = await asyncpg.connect(database=self.database, **self.address)
        try:
            rows = await conn.fetch(
                "SELECT prefix, id FROM queue_cluster_jobs WHERE state = 2 AND owner = $1", server
            )
        finally:
            await conn.close()
        return {bytes(r[0]) + b":c%d" % r[1] for r in rows}

    async def _run(self, sql: str) -> None:
        conn = await asyncpg.connect(database="test", **self.address)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def cleanup(self) -> None:
        run_in_thread(self._run(f"DROP DATABASE {self.database} WITH (FORCE)"))


class RedisShared(SharedStore):
    kind = "redis"

    def __init__(self, address: dict[str, object] | None = None) -> None:
        self.address = address or REDIS
        self.target = (str(self.address["host"]), int(self.address["port"]))  # type: ignore[call-overload]
        self.prefix = unique_name("gt_cluster") + ":"

    def flags(self, port: int | None = None) -> list[str]:
        host, default = self.target
        where = ["--redis-server", host, "--redis-port", str(port or default)]
        return ["-q", "redis", *where, "--redis-prefix", self.prefix]

    def backend(self, port: int | None = None) -> ClusterBackend:
        host, default = self.target
        return RedisCluster(RedisStore(host, port or default, prefix=self.prefix))

    async def held_by(self, server: int) -> set[bytes]:
        client = aioredis.Redis(**self.address)  # type: ignore[arg-type]
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
        run_in_thread(delete_redis_keys(self.prefix, self.address))
