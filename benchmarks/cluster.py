"""Cluster mode's throughput: clusters of 1, 2 and 3 servers against one server
with the PostgreSQL queue, under the same load (a measurement, not a test).

    python benchmarks/cluster.py [--jobs 4000] [--clients 4] [--workers 4] [--runs 3]

The load is the same in every case: ``--clients`` PHP clients submit
``--jobs`` background jobs in all (pipelined, 100 in flight each), then
``--workers`` PHP workers drain them; clients and workers are spread round-robin
over the servers.  Reported: jobs/s for submit + drain, and the servers' CPU
time per job (all servers together).  Each case runs in a scratch database of
its own on 127.0.0.1:5432 (user postgres), dropped afterwards.  On one machine
the servers, PostgreSQL and the PHP peers share the CPUs: this measures the
cost of cluster mode per job, not scaling across machines (docs/cluster.md).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import servers
from durable import PG, psql
from scenarios import PHP_DIR, queued

CASES = {"single server, -q postgres": (1, False)} | {
    f"cluster of {n}": (n, True) for n in (1, 2, 3)
}


def once(members: int, cluster: bool, jobs: int, clients: int, workers: int) -> dict[str, float]:
    database = "gt_bench_" + uuid.uuid4().hex[:8]
    psql(f"CREATE DATABASE {database}")
    flags = ["-q", "postgres", f"--libpq-conninfo={PG} dbname={database}"]
    if cluster:
        flags.append("--cluster")
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
            "jobs_per_s": total / (end - start),
            "submit_jobs_per_s": total / (submitted - start),
            "drain_jobs_per_s": total / (end - submitted),
            "server_cpu_us_per_job": cpu / total * 1e6,
        }
    finally:
        for s in started:
            s.stop()
        psql(f"DROP DATABASE {database} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}
    for _ in range(args.runs):
        for case, (members, cluster) in CASES.items():  # interleaved: drift hits all alike
            figures[case].append(once(members, cluster, args.jobs, args.clients, args.workers))
    load = f"{args.jobs} jobs, {args.clients} clients, {args.workers} workers"
    print(f"{load}, median of {args.runs} runs")
    print(f"{'case':28} {'jobs/s':>8} {'submit/s':>9} {'drain/s':>8} {'server CPU µs/job':>18}")
    medians = {}
    for case, runs in figures.items():
        med = medians[case] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"{case:28} {med['jobs_per_s']:8.0f} {med['submit_jobs_per_s']:9.0f}"
            f" {med['drain_jobs_per_s']:8.0f} {med['server_cpu_us_per_job']:18.0f}"
        )
    single, one = medians["single server, -q postgres"], medians["cluster of 1"]
    wall = 1e6 / one["jobs_per_s"] - 1e6 / single["jobs_per_s"]
    cpu = one["server_cpu_us_per_job"] - single["server_cpu_us_per_job"]
    print(f"cost of cluster mode per job: {wall:+.0f} µs wall, {cpu:+.0f} µs server CPU")


if __name__ == "__main__":
    main()
