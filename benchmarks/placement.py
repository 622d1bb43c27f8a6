"""How much where the scheduler puts the processes decides a one-at-a-time load.

    python benchmarks/placement.py [--jobs 10000] [--runs 3] [--geartrain-python PATH]

The drain of `scenario.sh bg` (PHP workers that take one job, finish it and ask
for the next) is a chain of round trips, and each round trip wakes the server,
then the worker.  This runs that drain against gearmand and geartrain (defaults:
gearmand's memory queue, geartrain's durable SQLite queue) with the server and
its workers pinned (taskset) to the same CPU, to different CPUs, and left to
the scheduler, and prints jobs/s for each placement: medians of alternating runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import servers
from scenarios import submit_then_drain

# (name, server CPUs, one CPU list per worker); "" leaves the choice to the scheduler.
PLACEMENTS = [
    ("1 worker, same CPU as the server", "0", ["0"]),
    ("1 worker, the other CPU", "0", ["1"]),
    ("1 worker, scheduler's choice", "", [""]),
    ("2 workers, all on one CPU", "0", ["0", "0"]),
    ("2 workers, both on the other CPU", "0", ["1", "1"]),
    ("2 workers, scheduler's choice", "", ["", ""]),
]


def drain(kind: str, python: str, server_cpus: str, worker_cpus: list[str], jobs: int) -> float:
    queue = ["-q", "builtin"] if kind == "gearmand" else []
    server = servers.start(kind, queue, python)
    try:
        if server_cpus:
            # Every thread of the server (gearmand has several).
            for task in os.listdir(f"/proc/{server.pid}/task"):
                os.sched_setaffinity(int(task), {int(c) for c in server_cpus.split(",")})
        return submit_then_drain(server, "bg", 2, jobs, worker_cpus)["drain_jobs_per_s"]
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--geartrain-python", default=sys.executable)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs")
    print(f"geartrain: {servers.build_of(args.geartrain_python)}; jobs/s, medians of {args.runs}")
    print(f"{'placement':36} {'gearmand':>9} {'geartrain':>9} {'ratio':>6}")
    for name, server_cpus, worker_cpus in PLACEMENTS:
        rates: dict[str, list[float]] = {"gearmand": [], "geartrain": []}
        for _ in range(args.runs):
            for kind in rates:
                rates[kind].append(
                    drain(kind, args.geartrain_python, server_cpus, worker_cpus, args.jobs)
                )
        gd, gt = (statistics.median(rates[k]) for k in ("gearmand", "geartrain"))
        spread = " ".join(f"{r:,.0f}" for r in sorted(rates["geartrain"] + rates["gearmand"]))
        print(f"{name:36} {gd:9,.0f} {gt:9,.0f} {gt / gd:6.2f}   (all runs: {spread})")


if __name__ == "__main__":
    main()
