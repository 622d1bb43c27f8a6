"""Cluster mode's throughput: clusters of 1, 2 and 3 servers against one server
with the same store's queue, on PostgreSQL and on Redis, under the same load
(a measurement, not a test).

    python benchmarks/cluster.py [--jobs 4000] [--clients 4] [--workers 4] [--runs 3]
                                 [--stores postgres,redis]
    python benchmarks/cluster.py --script-costs [--redis-port 6379]
    python benchmarks/cluster.py --failed-costs [--redis-port 6379] [--failed 10000]

The load is the same in every case: ``--clients`` PHP clients submit
``--jobs`` background jobs in all (pipelined, 100 in flight each), then
``--workers`` PHP workers drain them; clients and workers are spread round-robin
over the servers.  Reported: jobs/s for submit + drain, the servers' CPU
time per job (all servers together) and, on Redis, the Redis server's CPU time
per job (from INFO; it counts whatever else uses that Redis meanwhile).  Each
case runs in a scratch database of its own on 127.0.0.1:5432 (user postgres),
dropped afterwards, or under a key prefix of its own on the Redis at
127.0.0.1:6379, deleted afterwards.  On one machine the servers, the store
and the PHP peers share the CPUs: this measures the cost of cluster mode per
job, not scaling across machines (docs/cluster.md).

``--script-costs`` measures instead what bounds a Redis cluster: the Redis
server's CPU time per job for each script (submit, claim, acknowledge) at
batches of 1, 10 and 100 jobs, driven straight from Python.  Point it at a
Redis nobody else uses (``--redis-port``): INFO counts every client's work.

``--failed-costs`` times the Redis scripts of retries, the failed-job set,
schedules and cancel with ``--failed`` jobs in the failed set (three
functions): the wall time of each call and the Redis CPU it used.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).parent))

import servers
from durable import PG, psql
from scenarios import PHP_DIR, queued

from geartrain.cluster import Failure, Retry, Submission
from geartrain.cluster.redis import RedisCluster
from geartrain.store.redis import RedisStore

SIZES = (1, 2, 3)


def cases(store: str) -> dict[str, tuple[str, int, bool]]:
    """name -> (store, servers, cluster mode)."""
    return {f"single server, -q {store}": (store, 1, False)} | {
        f"{store} cluster of {n}": (store, n, True) for n in SIZES
    }


@contextmanager
def scratch(store: str) -> Iterator[list[str]]:
    """The queue flags of a scratch database or key prefix, removed afterwards."""
    name = "gt_bench_" + uuid.uuid4().hex[:8]
    if store == "postgres":
        psql(f"CREATE DATABASE {name}")
        try:
            yield ["-q", "postgres", f"--libpq-conninfo={PG} dbname={name}"]
        finally:
            psql(f"DROP DATABASE {name} WITH (FORCE)")
        return
    try:
        yield ["-q", "redis", f"--redis-prefix={name}:"]
    finally:
        client = redis.Redis()
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()


def redis_cpu(port: int = 6379) -> float:
    """Seconds of CPU the Redis server has used (every client's work, not only ours)."""
    client = redis.Redis(port=port)
    info = client.info("cpu")
    client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def script_costs(port: int, jobs: int = 4000) -> None:
    """Redis CPU µs per job of each script, by batch size."""
    client = redis.Redis(port=port)
    before = redis_cpu(port)
    for _ in range(2000):
        client.ping()
    client.close()
    print(f"a round trip (PING) costs Redis {(redis_cpu(port) - before) / 2000 * 1e6:.1f} µs CPU")
    print(f"Redis CPU µs per job, {jobs} jobs of 16 bytes")
    print(f"{'batch':>6} {'submit':>7} {'claim':>7} {'ack':>7}")
    for batch in (1, 10, 100):
        prefix = "gt_bench_" + uuid.uuid4().hex[:8] + ":"
        backend = RedisCluster(RedisStore(port=port, prefix=prefix))
        await backend.open(lambda: None)
        try:
            server = await backend.register("bench", 600)
            subs = [Submission(b"bench", b"", b"%016d" % i, 1, 0, b"") for i in range(jobs)]
            cpu = [redis_cpu(port)]
            for i in range(0, jobs, batch):
                await backend.submit(subs[i : i + batch], b"H:bench")
            cpu.append(redis_cpu(port))
            claimed = []
            while len(claimed) < jobs:
                claimed += await backend.claim(server, [(b"bench", batch)])
            cpu.append(redis_cpu(port))
            for i in range(0, jobs, batch):
                await backend.ack([(c.id, c.claim) for c in claimed[i : i + batch]])
            cpu.append(redis_cpu(port))
            await backend.leave(server)
        finally:
            await backend.close()
        costs = [(b - a) / jobs * 1e6 for a, b in zip(cpu, cpu[1:], strict=False)]
        print(f"{batch:6} " + " ".join(f"{c:7.1f}" for c in costs))


def once(
    store: str, members: int, cluster: bool, jobs: int, clients: int, workers: int
) -> dict[str, float]:
    with scratch(store) as flags:
        cpu0 = redis_cpu() if store == "redis" else 0.0
        figures = measure(flags + ["--cluster"] * cluster, members, jobs, clients, workers)
        if store == "redis":
            figures["store_cpu_us_per_job"] = (redis_cpu() - cpu0) / figures["jobs"] * 1e6
        return figures


def measure(
    flags: list[str], members: int, jobs: int, clients: int, workers: int
) -> dict[str, float]:
    started = [servers.start("geartrain", flags) for _ in range(members)]
    try:
        cpu0 = sum(s.cpu_seconds() for s in started)
        start = time.perf_counter()
        submitters = [
            subprocess.Popen(
                ["php", str(PHP_DIR / "client.php"), str(started[i % members].port), "bgbatch"]
                + [str(jobs // clients), "100", "16"],
                stdout=subprocess.DEVNULL,
            )
            for i in range(clients)
        ]
        for proc in submitters:
            proc.wait(600)
        submitted = time.perf_counter()
        # Usually every job; libgearman's time-based unique keys now and then
        # repeat across client processes, and such jobs coalesce.  In cluster
        # mode any member's `status` counts the whole cluster.
        total = queued(started[0].port)
        shares = [total // workers + (i < total % workers) for i in range(workers)]
        drainers = [
            subprocess.Popen(
                ["php", str(PHP_DIR / "worker.php"), str(started[i % members].port), str(share)]
            )
            for i, share in enumerate(shares)
        ]
        for proc in drainers:
            proc.wait(600)
        end = time.perf_counter()
        cpu = sum(s.cpu_seconds() for s in started) - cpu0
        return {
            "jobs": total,
            "jobs_per_s": total / (end - start),
            "submit_jobs_per_s": total / (submitted - start),
            "drain_jobs_per_s": total / (end - submitted),
            "server_cpu_us_per_job": cpu / total * 1e6,
        }
    finally:
        for s in started:
            s.stop()


async def failed_costs(port: int, failed: int) -> None:
    """Wall ms and Redis CPU ms of each failed-set, retry, fire and cancel call."""
    prefix = "gt_bench_" + uuid.uuid4().hex[:8] + ":"
    backend = RedisCluster(RedisStore(port=port, prefix=prefix))
    await backend.open(lambda: None)

    async def timed(name: str, call: Any) -> Any:
        cpu, start = redis_cpu(port), time.perf_counter()
        result = await call
        wall, used = time.perf_counter() - start, redis_cpu(port) - cpu
        print(f"{name:42} {wall * 1e3:8.2f} {used * 1e3:8.2f}")
        return result

    try:
        server = await backend.register("bench", 600)
        subs = [Submission(b"f%d" % (i % 3), b"u%d" % i, b"data", 1, 0, b"") for i in range(failed)]
        for i in range(0, failed, 1000):
            await backend.submit(subs[i : i + 1000], b"H:bench")
        title = f"with {failed} jobs in the failed set"
        print(f"{title:42} {'wall ms':>8} {'CPU ms':>8}")
        claimed = []
        while len(claimed) < failed:
            claimed += await backend.claim(server, [(b"f0", 500), (b"f1", 500), (b"f2", 500)])
        fails = [Failure(c.id, c.claim, 3, '[["fail","","w",1.0]]', "fail") for c in claimed]
        await timed("fail, a batch of 100", backend.fail(fails[:100]))
        for i in range(100, failed, 1000):
            await backend.fail(fails[i : i + 1000])
        await timed("show failed jobs (all)", backend.failed_jobs())
        await timed("show failed jobs FUNCTION", backend.failed_jobs(function=b"f1"))
        one = claimed[0].id
        await timed("one failed job (the console's view)", backend.failed_jobs(one, b"H:bench"))
        await timed("failed counts (each renewal)", backend.failed_counts())
        await timed("bound the failed set, nothing dropped", backend.trim_failed(failed, 86400))
        await timed("retry failed HANDLE", backend.retry_failed(one, b"H:bench"))
        await timed("delete failed HANDLE", backend.delete_failed(claimed[1].id, b"H:bench"))
        await timed("retry failed all FUNCTION", backend.retry_failed(function=b"f2"))
        [job] = await backend.claim(server, [(b"f0", 1)])
        retry = Retry(job.id, job.claim, 0, 1, "[]", 3600.0)
        await timed("retry (a failed attempt)", backend.retry([retry]))
        tick = Submission(b"tick", b"", b"t", 1, 0, b"")
        fired = await timed("fire a schedule", backend.fire(b"cron:t:1", tick, b"H:bench"))
        await timed("cancel from any member", backend.cancel(fired, b"H:bench"))
        await backend.leave(server)
    finally:
        await backend.close()
        client = redis.Redis(port=port)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stores", default="postgres,redis")
    parser.add_argument("--script-costs", action="store_true")
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--failed-costs", action="store_true")
    parser.add_argument("--failed", type=int, default=10_000)
    args = parser.parse_args()
    if args.script_costs:
        asyncio.run(script_costs(args.redis_port))
        return
    if args.failed_costs:
        asyncio.run(failed_costs(args.redis_port, args.failed))
        return
    stores = args.stores.split(",")
    all_cases = {name: case for store in stores for name, case in cases(store).items()}
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in all_cases}
    for _ in range(args.runs):
        for name, case in all_cases.items():  # interleaved: drift hits all alike
            figures[name].append(once(*case, args.jobs, args.clients, args.workers))
    load = f"{args.jobs} jobs, {args.clients} clients, {args.workers} workers"
    print(f"{load}, median of {args.runs} runs")
    print(
        f"{'case':28} {'jobs/s':>8} {'submit/s':>9} {'drain/s':>8} {'server CPU µs/job':>18}"
        f" {'Redis CPU µs/job':>17}"
    )
    medians = {}
    for name, runs in figures.items():
        med = medians[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        store_cpu = med.get("store_cpu_us_per_job")
        print(
            f"{name:28} {med['jobs_per_s']:8.0f} {med['submit_jobs_per_s']:9.0f}"
            f" {med['drain_jobs_per_s']:8.0f} {med['server_cpu_us_per_job']:18.0f}"
            + (f" {store_cpu:17.0f}" if store_cpu is not None else "")
        )
    for store in stores:
        single, one = medians[f"single server, -q {store}"], medians[f"{store} cluster of 1"]
        wall = 1e6 / one["jobs_per_s"] - 1e6 / single["jobs_per_s"]
        cpu = one["server_cpu_us_per_job"] - single["server_cpu_us_per_job"]
        print(
            f"cost of cluster mode per job ({store}): {wall:+.0f} µs wall, {cpu:+.0f} µs server CPU"
        )


if __name__ == "__main__":
    main()
