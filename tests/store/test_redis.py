"""Redis specifics: the key layout, an index entry without its hash, killed
connections, and the warning about Redis's own persistence (what every backend does
is in test_contract.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from geartrain.store.redis import RedisStore

from .conftest import REDIS, job

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
