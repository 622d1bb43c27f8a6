"""The query plans of cluster mode's statements on a large queue (docs/cluster.md).

    python benchmarks/cluster_plans.py [--jobs 200000]

Fills a scratch database on 127.0.0.1:5432 (user postgres) with ``--jobs``
queued jobs of three functions, 1% of them running, and prints
``EXPLAIN (ANALYZE)`` of each statement, each in a transaction rolled back.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).parent))

from durable import PG, psql

from geartrain.cluster.postgres import PostgresCluster


async def explain(database: str, jobs: int) -> None:
    cluster = PostgresCluster(f"{PG} dbname={database}", "queue")
    await cluster.open(lambda: None)
    server = await cluster.register("plans", 60)
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}")
    j, ch = cluster.jobs, cluster.channel
    try:
        await conn.execute(
            f"INSERT INTO {j} (function_name, unique_key, coalesce_key, priority, run_at, prefix,"
            " reducer, data) SELECT ('f' || (i % 3))::bytea, ('u' || i)::bytea, ('u' || i)::bytea,"
            f" i % 3, now(), 'H:x', '', 'data' FROM generate_series(1, {jobs}) i"
        )
        await conn.execute(
            f"UPDATE {j} SET state = 2, owner = {server}, attempt = 1 WHERE id % 100 = 0"
        )
        await conn.execute(f"ANALYZE {j}")
        statements = {
            "claim": (cluster._claim, [b"f0", b"f1"], [10, 10], server),
            "submit": (
                cluster._submit,
                [b"f0", b"f1"],
                [b"u5", b"new"],
                [b"u5", b"new"],
                [1, 1],
                [0, 0],
                [b"", b""],
                [b"d", b"d"],
                [0, 1],
                b"H:x",
                ch,
            ),
            "acknowledge": (cluster._ack, [100, 200, 300], [1, 1, 1]),
            "release": (cluster._release, [400, 500], [1, 1], [1, 1], ch),
            "progress": (cluster._progress, [600], [1], [1], [2]),
            "renew": (cluster._renew, server, 10.0),
            "sweep": (cluster._rescue, -1, ch),
            "status": (f"SELECT prefix, state FROM {j} WHERE id = $1", 5),
        }
        for name, (sql, *args) in statements.items():
            tx = conn.transaction()
            await tx.start()
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}", *args)
            await tx.rollback()
            print(f"--- {name}")
            print("\n".join(r[0] for r in rows))
    finally:
        await conn.close()
        await cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200_000)
    args = parser.parse_args()
    database = "gt_plans_" + uuid.uuid4().hex[:8]
    psql(f"CREATE DATABASE {database}")
    try:
        asyncio.run(explain(database, args.jobs))
    finally:
        psql(f"DROP DATABASE {database} WITH (FORCE)")


if __name__ == "__main__":
    main()
