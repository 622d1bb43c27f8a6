"""The query plans of cluster mode's statements on a large queue (docs/cluster.md).

    python benchmarks/cluster_plans.py [--jobs 200000]

Fills a scratch database on 127.0.0.1:5432 (user postgres) with ``--jobs``
queued jobs of three functions, 1% of them running and 5% waiting for a retry
(due in an hour), 5% more of a fourth function all waiting, ``--failed`` jobs
in the failed set and a day of a schedule's firings, and prints ``EXPLAIN
(ANALYZE)`` of each statement, each in a transaction rolled back.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).parent))

from durable import PG, psql

from geartrain.cluster.postgres import PostgresCluster
from geartrain.store.records import SharedQuery


async def explain(database: str, jobs: int, failed: int) -> None:
    cluster = PostgresCluster(f"{PG} dbname={database}", "queue")
    await cluster.open(lambda: None)
    server = await cluster.register("plans", 60)
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}")
    j, f, ch = cluster.jobs, cluster.failed, cluster.channel
    try:
        await conn.execute(
            f"INSERT INTO {j} (function_name, unique_key, coalesce_key, priority, run_at, prefix,"
            " reducer, data) SELECT ('f' || (i % 3))::bytea, ('u' || i)::bytea, ('u' || i)::bytea,"
            f" i % 3, now(), 'H:x', '', 'data' FROM generate_series(1, {jobs}) i"
        )
        await conn.execute(
            f"UPDATE {j} SET state = 2, owner = {server}, attempt = 1 WHERE id % 100 = 0"
        )
        await conn.execute(
            f"UPDATE {j} SET run_at = now() + interval '1 hour', failures = 1 WHERE id % 20 = 1"
        )
        await conn.execute(
            f"INSERT INTO {f} (id, function_name, unique_key, coalesce_key, priority, attempt,"
            " failures, outcomes, prefix, reducer, data, reason, failed_at)"
            f" SELECT {jobs * 10} + i, ('f' || (i % 3))::bytea, ('v' || i)::bytea,"
            " ('v' || i)::bytea, 1, 3, 3, '[]', 'H:x', '', 'data', 'fail',"
            " now() - i * interval '1 second'"
            f" FROM generate_series(1, {failed}) i"
        )
        await conn.execute(
            f"INSERT INTO {cluster.firings} (key, fired_at) SELECT ('cron:t:' || i)::bytea,"
            " now() - i * interval '1 minute' FROM generate_series(1, 1440) i"
        )
        await conn.execute(
            f"INSERT INTO {j} (function_name, unique_key, priority, run_at, prefix, reducer, data)"
            " SELECT 'waiting', '', 1, now() + interval '1 hour', 'H:x', '', 'data'"
            f" FROM generate_series(1, {jobs // 20})"
        )
        for table in (j, f, cluster.firings):
            await conn.execute(f"ANALYZE {table}")
        statements = {
            "claim": (cluster._claim, [b"f0", b"f1"], [10, 10], server),
            "claim, nothing due": (cluster._claim, [b"waiting"], [10], server),
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
                [None, "3"],  # the submissions' retry policies (a stored form)
                [0.0, 3600.0],  # and how long their results are kept
            ),
            "acknowledge": (cluster._ack, [100, 200, 300], [1, 1, 1]),
            "release": (cluster._release, [400, 500], [1, 1], [1, 1], ch),
            "progress": (cluster._progress, [600], [1], [1], [2]),
            "renew": (cluster._renew, server, 10.0),
            "sweep": (cluster._orphans,),
            "status": (f"SELECT prefix, state FROM {j} WHERE id = $1", 5),
            "retry": (cluster._retry, [700, 800], [1, 1], [0, 0], [1, 1], ["[]", "[]"], [1, 2], ch),
            "fail": (cluster._fail, [900], [1], [3], ['[["fail", "", "w", 0]]'], ["fail"]),
            "fire": (cluster._fire, b"cron:t:new", b"f0", 1, b"H:x", b"", b"d", ch),
            "cancel": (cluster._cancel, 2, b"H:x"),
            "show failed jobs": (cluster._failed_list, None, None, None),
            "show failed jobs FUNCTION": (cluster._failed_list, None, None, b"f1"),
            "failed job by handle": (cluster._failed_list, jobs * 10 + 5, b"H:x", None),
            "retry failed HANDLE": (cluster._retry_failed, jobs * 10 + 5, b"H:x", None, ch),
            "retry failed all FUNCTION": (cluster._retry_failed, None, None, b"f1", ch),
            "delete failed HANDLE": (cluster._delete_failed, jobs * 10 + 6, b"H:x", None),
            "trim failed set": (cluster._trim_failed, failed // 2, 86400.0),
            "trim failed set, nothing to trim": (cluster._trim_failed, failed, 86400.0),
            "failed counts": (f"SELECT function_name, count(*) FROM {f} GROUP BY function_name",),
        }
        await console_lists(cluster)
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


async def console_lists(cluster: PostgresCluster) -> None:
    """The console's lists of shared jobs (their SQL is built per filter): the
    time of each call, with its total."""
    lists = {
        "queued, first page": SharedQuery(
            "queued", None, None, None, None, False, 0, 50, 200, 50_000
        ),
        "queued, deep page": SharedQuery(
            "queued", None, None, None, None, False, 150_000, 50, 200, 50_000
        ),
        "queued, newest first": SharedQuery(
            "queued", None, None, None, None, True, 0, 50, 200, 50_000
        ),
        "queued of a function and priority": SharedQuery(
            "queued", b"f1", 1, None, None, False, 0, 50, 200, 50_000
        ),
        "queued by unique key": SharedQuery(
            "queued", None, None, b"u7", None, False, 0, 50, 200, 50_000
        ),
        "queued with text (scan capped)": SharedQuery(
            "queued", None, None, None, b"zz", False, 0, 50, 200, 50_000
        ),
        "running": SharedQuery("running", None, None, None, None, False, 0, 50, 200, 50_000),
        "retrying, by due time": SharedQuery(
            "retrying", None, None, None, None, False, 0, 50, 200, 50_000, True
        ),
        "scheduled": SharedQuery("scheduled", None, None, None, None, False, 0, 50, 200, 50_000),
    }
    for name, query in lists.items():
        await cluster.list_jobs(query)  # warm
        began = time.perf_counter()
        total, exact, page = await cluster.list_jobs(query)
        took = (time.perf_counter() - began) * 1000
        print(f"--- list: {name}: {took:.1f} ms (total {total}, exact {exact}, {len(page)} listed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--failed", type=int, default=10_000)
    args = parser.parse_args()
    database = "gt_plans_" + uuid.uuid4().hex[:8]
    psql(f"CREATE DATABASE {database}")
    try:
        asyncio.run(explain(database, args.jobs, args.failed))
    finally:
        psql(f"DROP DATABASE {database} WITH (FORCE)")


if __name__ == "__main__":
    main()
