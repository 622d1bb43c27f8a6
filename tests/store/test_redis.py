"""Redis specifics: the key layout, outages, killed connections, and the
warning about Redis's own persistence."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

import serverproc
from geartrain.store import StoreError
from geartrain.store.redis import RedisStore

from .conftest import REDIS, job
from .proxy import TcpProxy

pytestmark = [pytest.mark.backend, pytest.mark.timeout(60)]


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis(**REDIS)  # type: ignore[arg-type]
    yield c
    await c.aclose()


async def test_key_layout(redis_prefix: str, client: aioredis.Redis) -> None:
    store = RedisStore(prefix=redis_prefix, **REDIS)  # type: ignore[arg-type]
    await store.open()
    try:
        await store.write([job(7, data=b"a\0b", when=1_900_000_000), job(8)], [])
        assert await client.zrange(f"{redis_prefix}jobs", 0, -1, withscores=True) == [
            (b"7", 7.0),
            (b"8", 8.0),
        ]
        assert await client.hgetall(f"{redis_prefix}job:7") == {
            b"function": b"reverse",
            b"unique": b"u7",
            b"data": b"a\0b",
            b"priority": b"1",
            b"when": b"1900000000",
        }
        await store.write([], [7, 8])
        assert [k async for k in client.scan_iter(match=redis_prefix + "*")] == []
    finally:
        await store.close()


async def test_index_entry_without_a_hash_is_skipped(
    redis_prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(prefix=redis_prefix, **REDIS)  # type: ignore[arg-type]
    await store.open()
    try:
        await store.write([job(1), job(2)], [])
        await client.delete(f"{redis_prefix}job:1")
        with caplog.at_level(logging.WARNING, "geartrain.store.redis"):
            assert await store.load() == [job(2)]
        assert "1 ids" in caplog.text
    finally:
        await store.close()


async def test_load_reads_in_chunks(redis_prefix: str) -> None:
    store = RedisStore(prefix=redis_prefix, **REDIS)  # type: ignore[arg-type]
    await store.open()
    try:
        jobs = [job(i) for i in range(1, 2502)]  # more than two chunks of 1000
        await store.write(jobs, [])
        assert await store.load() == jobs
    finally:
        await store.close()


async def test_warns_when_redis_does_not_fsync(
    redis_prefix: str, client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    config = await client.config_get("append*")
    store = RedisStore(prefix=redis_prefix, **REDIS)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, "geartrain.store.redis"):
        await store.open()
    await store.close()
    durable = config.get(b"appendonly") == b"yes" and config.get(b"appendfsync") == b"always"
    assert ("append" in caplog.text) is not durable


def test_description_hides_the_password() -> None:
    assert "secret" not in str(RedisStore("h", 6379, "secret"))


async def test_unreachable_server_raises_store_error(redis_prefix: str) -> None:
    port = serverproc.free_port()
    store = RedisStore("127.0.0.1", port, prefix=redis_prefix, connect_timeout=2)
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}"):
        await store.open()
    await store.close()


async def test_outage_fails_writes_then_recovers(redis_prefix: str) -> None:
    proxy = await TcpProxy(str(REDIS["host"]), int(REDIS["port"])).start()
    store = RedisStore("127.0.0.1", proxy.port, prefix=redis_prefix, connect_timeout=2)
    try:
        await store.open()
        await store.write([job(1), job(2)], [])
        await proxy.stop()
        for i in (3, 4):
            with pytest.raises(StoreError):
                await store.write([job(i)], [1])
        await proxy.start()
        await store.write([job(5)], [1])
        assert [j.id for j in await store.load()] == [2, 5]
    finally:
        await store.close()
        await proxy.stop()


async def test_connection_killed_by_the_server(redis_prefix: str, client: aioredis.Redis) -> None:
    store = RedisStore(prefix=redis_prefix, **REDIS)  # type: ignore[arg-type]
    await store.open()
    try:
        await store.write([job(1)], [])
        assert store._redis is not None
        own_id = await store._redis.client_id()  # only this store's connection
        assert await client.client_kill_filter(_id=own_id) == 1
        await store.write([job(2)], [1])
        assert [j.id for j in await store.load()] == [2]
    finally:
        await store.close()
