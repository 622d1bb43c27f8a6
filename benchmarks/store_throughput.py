"""Durable-queue throughput per backend and batch size (a measurement, not a test).

Each batch is one ``Store.write`` call, i.e. one transaction: a run with batch
size 1 is what one-commit-per-job servers (gearmand's queue plugins) pay; larger
batches are what geartrain's group commit gets when submissions arrive together.

    python benchmarks/store_throughput.py [--backends sqlite,postgres,mysql,redis]
        [--batches 1,100,1000] [--seconds 2] [--data-size 100] [--durability power]

Uses the local test services (PostgreSQL and MariaDB database ``test``, Redis on
6379) in a table or key prefix of its own, removed afterwards; SQLite in a
temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from geartrain.store import Store, StoredJob
from geartrain.store.durability import Durability

Factory = Callable[[str], Store]


@asynccontextmanager
async def backend(name: str, workdir: Path, level: Durability) -> AsyncIterator[Factory]:
    """Yield a factory of stores (one per table/prefix name), cleaning up after."""
    names: list[str] = []
    if name == "sqlite":
        from geartrain.store.sqlite import SqliteStore

        yield lambda table: SqliteStore(workdir / f"{table}.sqlite3", table, durability=level)
        return
    if name == "postgres":
        import asyncpg

        from geartrain.store.postgres import PostgresStore

        def make_postgres(table: str) -> Store:
            names.append(table)
            conninfo = "host=127.0.0.1 port=5432 user=postgres dbname=test"
            return PostgresStore(conninfo, table, durability=level)

        yield make_postgres
        conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database="test")
        for table in names:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()
        return
    if name == "mysql":
        import asyncmy

        from geartrain.store.mysql import MysqlStore

        def make_mysql(table: str) -> Store:
            names.append(table)
            return MysqlStore("127.0.0.1", 3306, "root", "", "test", table, durability=level)

        yield make_mysql
        conn = await asyncmy.connect(host="127.0.0.1", user="root", db="test")
        async with conn.cursor() as cur:
            for table in names:
                await cur.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.ensure_closed()
        return
    import redis.asyncio as aioredis

    from geartrain.store.redis import RedisStore

    def make_redis(prefix: str) -> Store:
        names.append(prefix)
        return RedisStore(prefix=f"{prefix}:", durability=level)

    yield make_redis
    client = aioredis.Redis()
    for prefix in names:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 1000):
            await client.delete(*keys[i : i + 1000])
    await client.aclose()


async def measure(store: Store, batch: int, seconds: float, data: bytes) -> tuple[float, float]:
    """Jobs per second for adding, then for finishing, in batches of ``batch``."""
    next_id = 1
    added: list[int] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        jobs = [StoredJob(i, b"bench", b"", data, 1, 0) for i in range(next_id, next_id + batch)]
        await store.write(jobs, [])
        added.extend(j.id for j in jobs)
        next_id += batch
    add_rate = len(added) / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(0, len(added), batch):
        await store.write([], added[i : i + batch])
    done_rate = len(added) / (time.perf_counter() - start)
    return add_rate, done_rate


async def main(args: argparse.Namespace) -> None:
    data = b"x" * args.data_size
    print(f"{'backend':<9} {'batch':>6} {'add jobs/s':>12} {'done jobs/s':>12}")
    with tempfile.TemporaryDirectory(prefix="gt-bench-") as tmp:
        for name in args.backends.split(","):
            async with backend(name, Path(tmp), Durability(args.durability)) as make:
                for batch in map(int, args.batches.split(",")):
                    store = make(f"gt_bench_{secrets.token_hex(4)}")
                    await store.open()
                    try:
                        add, done = await measure(store, batch, args.seconds, data)
                    finally:
                        await store.close()
                    print(f"{name:<9} {batch:>6} {add:>12,.0f} {done:>12,.0f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres,mysql,redis")
    parser.add_argument("--batches", default="1,100,1000")
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent adding per run")
    parser.add_argument("--data-size", type=int, default=100, help="payload bytes per job")
    parser.add_argument("--durability", choices=["crash", "power"], default="power")
    asyncio.run(main(parser.parse_args()))
