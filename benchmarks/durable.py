"""Durable background jobs/s, geartrain against gearmand, SQLite and PostgreSQL, in one run.

    python benchmarks/durable.py [--jobs 4000] [--runs 3]

Both servers get the same gearmand queue flags (`-q libsqlite3 --libsqlite3-db=…`,
`-q postgres --libpq-conninfo=… --libpq-table=…`; geartrain also `--durability=power`,
fsync before JOB_CREATED as gearmand's plugins) and the same PHP load: two clients
submitting background jobs (pipelined, 100 in flight; and one at a time with 16
clients), then two workers draining them.  PostgreSQL must accept `user=postgres`
on 127.0.0.1:5432; a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import servers
from scenarios import submit_then_drain

PG = "host=127.0.0.1 port=5432 user=postgres"


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", f"{PG} dbname=postgres", "-q", "-c", sql], check=True, capture_output=True
    )


def queue_flags(backend: str, tmp: Path, database: str) -> list[str]:
    if backend == "sqlite":
        return ["-q", "libsqlite3", f"--libsqlite3-db={tmp / 'queue.sqlite3'}"]
    table = "q_" + uuid.uuid4().hex[:8]
    return ["-q", "postgres", f"--libpq-conninfo={PG} dbname={database}", f"--libpq-table={table}"]


def once(
    kind: str, backend: str, mode: str, clients: int, jobs: int, database: str
) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="gt-durable-"))
    # geartrain at the level that matches gearmand's plugins: fsync before JOB_CREATED.
    power = ["--durability=power"] if kind == "geartrain" else []
    server = servers.start(kind, queue_flags(backend, tmp, database) + power)
    try:
        return submit_then_drain(server, mode, clients, jobs)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    database = "gt_bench_" + uuid.uuid4().hex[:8]
    psql(f"CREATE DATABASE {database}")
    rows = []
    try:
        for backend in ("sqlite", "postgres"):
            for mode, clients, label in (("bgbatch", 2, "pipelined"), ("bg", 16, "one at a time")):
                figures: dict[str, list[dict[str, float]]] = {"gearmand": [], "geartrain": []}
                for i in range(args.runs):
                    for kind in (
                        ("gearmand", "geartrain") if i % 2 == 0 else ("geartrain", "gearmand")
                    ):
                        figures[kind].append(
                            once(kind, backend, mode, clients, args.jobs, database)
                        )
                med = {
                    kind: {k: statistics.median(r[k] for r in results) for k in results[0]}
                    for kind, results in figures.items()
                }
                rows.append((backend, label, med["gearmand"], med["geartrain"]))
                print(f"{backend:8} {label:14} done", flush=True)
    finally:
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    print()
    print(f"{'store':8} {'clients':14} {'':7} {'gearmand':>10} {'geartrain':>10} {'ratio':>7}")
    for backend, label, gd, gt in rows:
        for key, name in (
            ("submit_jobs_per_s", "submit"),
            ("drain_jobs_per_s", "drain"),
            ("jobs_per_s", "both"),
        ):
            ratio = gt[key] / gd[key]
            print(f"{backend:8} {label:14} {name:7} {gd[key]:10,.0f} {gt[key]:10,.0f} {ratio:7.1f}")


if __name__ == "__main__":
    main()
