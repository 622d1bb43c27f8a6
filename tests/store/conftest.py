"""Store fixtures: each run gets its own PostgreSQL and MariaDB database, a
table per test, a Redis key prefix per test and a temporary SQLite file.

The services are looked for at 127.0.0.1 on their standard ports, or where
``GEARTRAIN_TEST_PG``, ``GEARTRAIN_TEST_MYSQL`` and ``GEARTRAIN_TEST_REDIS``
(``host:port``) say.  Where one does not answer as expected (a fresh machine),
a private server of that kind is started for the run (tests/store/dbservers.py).

None of these fixtures skips: a backend that cannot be reached fails its
tests, so a CI run can never pass with a backend silently left out.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncmy
import asyncpg
import pytest
import redis.asyncio as aioredis

from geartrain.store import Store, StoredJob
from geartrain.store.durability import Durability
from geartrain.store.mysql import MysqlStore
from geartrain.store.postgres import PostgresStore
from geartrain.store.redis import RedisStore
from geartrain.store.sqlite import SqliteStore

from .dbservers import ensure_services


def _address(variable: str, port: int) -> dict[str, object]:
    host, _, number = (os.environ.get(variable) or f"127.0.0.1:{port}").rpartition(":")
    return {"host": host or "127.0.0.1", "port": int(number)}


# Updated in place by `database_services` when private servers stand in.
PG = {**_address("GEARTRAIN_TEST_PG", 5432), "user": "postgres"}
MYSQL = {**_address("GEARTRAIN_TEST_MYSQL", 3306), "user": "root", "password": ""}
REDIS = _address("GEARTRAIN_TEST_REDIS", 6379)

BACKENDS = ["sqlite", "postgres", "mysql", "redis"]

MakeStore = Callable[..., Store]


def job(i: int, **kw: object) -> StoredJob:
    """Job ``i`` with plain defaults; keyword arguments replace fields."""
    fields: dict[str, object] = {
        "function": b"reverse",
        "unique": b"u%d" % i,
        "data": b"data %d" % i,
        "priority": 1,
        "when": 0,
    }
    fields.update(kw)
    return StoredJob(i, **fields)  # type: ignore[arg-type]


def unique_name(prefix: str = "gt") -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


def run_in_thread(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion on a private loop (session fixtures may be
    set up from inside a test's running loop)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session", autouse=True)
def database_services() -> Iterator[None]:
    """PostgreSQL, MariaDB and Redis for the store tests: the machine's, or private ones."""
    with ensure_services({"postgres": PG, "mysql": MYSQL, "redis": REDIS}) as notes:
        for note in notes:
            print(f"\n{note}")  # shown with -s; a standing-in server is no failure
        yield


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database for this test run, dropped at the end."""
    name = unique_name("gt_test")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(database="test", **PG)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_in_thread(run(f"CREATE DATABASE {name}"))
    yield name
    run_in_thread(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def mysql_database() -> Iterator[str]:
    """A MariaDB database for this test run, dropped at the end."""
    name = unique_name("gt_test")

    async def run(sql: str) -> None:
        conn = await asyncmy.connect(db="test", **MYSQL)
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql)
        finally:
            await conn.ensure_closed()

    run_in_thread(run(f"CREATE DATABASE {name}"))
    yield name
    run_in_thread(run(f"DROP DATABASE IF EXISTS {name}"))


@pytest.fixture
def table() -> str:
    """A table name of this test's own."""
    return unique_name("q")


def postgres_conninfo(database: str, host: object = PG["host"], port: object = PG["port"]) -> str:
    return f"host={host} port={port} user={PG['user']} dbname={database}"


@pytest.fixture
def pg_conninfo(pg_database: str) -> str:
    return postgres_conninfo(pg_database)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted after (found by SCAN)."""
    prefix = unique_name("gt_test") + ":"
    yield prefix
    run_in_thread(delete_redis_keys(prefix))


async def delete_redis_keys(prefix: str, address: dict[str, object] = REDIS) -> None:
    """Delete every key under ``prefix`` (found by SCAN)."""
    client = aioredis.Redis(**address)  # type: ignore[arg-type]
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path, table: str
) -> Callable[[str], Callable[..., Store]]:
    """``store_factory(backend)`` gives ``make(**overrides)``: a new, unopened store
    on this test's own location (so two calls see the same jobs).  Keyword arguments
    go to the store's constructor; besides, SQLite takes ``path`` and PostgreSQL
    ``host`` and ``port``, as MariaDB and Redis do."""

    def for_backend(backend: str) -> Callable[..., Store]:
        def make(**kw: Any) -> Store:
            if backend in ("sqlite", "sqlite-power"):
                if backend == "sqlite-power":
                    kw.setdefault("durability", Durability.POWER)
                path = kw.pop("path", tmp_path / "queue.sqlite3")
                return SqliteStore(path, kw.pop("table", table), **kw)
            if backend == "postgres":
                database = request.getfixturevalue("pg_database")
                address = {key: kw.pop(key) for key in ("host", "port") if key in kw}
                conninfo = postgres_conninfo(database, **address)
                return PostgresStore(conninfo, kw.pop("table", table), **kw)
            if backend == "mysql":
                args = {**MYSQL, "db": request.getfixturevalue("mysql_database"), **kw}
                return MysqlStore(table=args.pop("table", table), **args)
            args = {**REDIS, "prefix": request.getfixturevalue("redis_prefix"), **kw}
            return RedisStore(**args)

        return make

    return for_backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(
    backend: str, store_factory: Callable[[str], MakeStore]
) -> AsyncIterator[MakeStore]:
    """Factory for stores of the parametrised backend; all are closed after the test."""
    made: list[Store] = []
    factory = store_factory(backend)

    def make(**kw: Any) -> Store:
        store = factory(**kw)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    """An opened store of the parametrised backend."""
    s = make_store()
    await s.open()
    return s
