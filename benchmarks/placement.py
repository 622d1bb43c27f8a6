"""How much where the scheduler puts the processes decides a load of round trips.

    python benchmarks/placement.py [--load drain|pipelined] [--jobs N] [--runs 3]
        [--gearmand PATH ...] [--geartrain-python PATH] [--geartrain-flags FLAGS]

A PHP worker takes one job, finishes it and asks for the next: a chain of round
trips, each of which wakes the server, then the worker.  ``drain`` is the drain
of `scenario.sh bg` (gearmand's memory queue, geartrain's defaults: its durable
SQLite queue); ``pipelined`` is row 2 of run.py (two clients with 100 jobs in
flight each, two workers, both servers on the memory queue).  Each runs with the
server and its peers pinned (taskset) to the same CPU, to different CPUs, and
left to the scheduler, and prints jobs/s for each placement: medians of
alternating runs, and geartrain's ratio to the faster gearmand.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys

import servers
from scenarios import pipelined, submit_then_drain

# (name, server CPUs, one CPU list per worker[, one per client]); "": the scheduler's choice.
DRAIN = [
    ("1 worker, same CPU as the server", "0", ["0"], []),
    ("1 worker, the other CPU", "0", ["1"], []),
    ("1 worker, scheduler's choice", "", [""], []),
    ("2 workers, all on one CPU", "0", ["0", "0"], []),
    ("2 workers, both on the other CPU", "0", ["1", "1"], []),
    ("2 workers, scheduler's choice", "", ["", ""], []),
]
PIPELINED = [
    ("workers on the server's CPU, clients not", "0", ["0", "0"], ["1", "1"]),
    ("clients on the server's CPU, workers not", "0", ["1", "1"], ["0", "0"]),
    ("every peer on the other CPU", "0", ["1", "1"], ["1", "1"]),
    ("a worker and a client on each CPU", "0", ["0", "1"], ["0", "1"]),
    ("scheduler's choice", "", ["", ""], ["", ""]),
]


def rate(
    contender: servers.Contender,
    python: str,
    load: str,
    placement: tuple[str, str, list[str], list[str]],
    jobs: int,
) -> float:
    _name, server_cpus, worker_cpus, client_cpus = placement
    server = servers.start(contender.kind, contender.flags, python, gearmand=contender.gearmand)
    try:
        if server_cpus:
            # Every thread of the server (gearmand has several).
            for task in os.listdir(f"/proc/{server.pid}/task"):
                os.sched_setaffinity(int(task), {int(c) for c in server_cpus.split(",")})
        if load == "drain":
            return submit_then_drain(server, "bg", 2, jobs, worker_cpus)["drain_jobs_per_s"]
        return pipelined(server, False, worker_cpus, client_cpus)["jobs_per_s"]
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", choices=("drain", "pipelined"), default="drain")
    parser.add_argument("--jobs", type=int, default=10_000, help="drain: jobs submitted")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gearmand", action="append", default=[])
    parser.add_argument("--geartrain-python", default=sys.executable)
    parser.add_argument(
        "--geartrain-flags", default="", help='a second geartrain, e.g. "--busy-poll=0"'
    )
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs")
    memory = ["-q", "builtin"]
    contenders = [
        servers.Contender(f"gearmand {servers.gearmand_version(path)}", "gearmand", memory, path)
        for path in args.gearmand or [servers.GEARMAND]
    ]
    geartrain_queue = memory if args.load == "pipelined" else []
    contenders.append(servers.Contender("geartrain", "geartrain", geartrain_queue))
    if args.geartrain_flags:
        flags = shlex.split(args.geartrain_flags)
        contenders.append(
            servers.Contender(
                f"geartrain {args.geartrain_flags}", "geartrain", geartrain_queue + flags
            )
        )
    build = servers.build_of(args.geartrain_python)
    print(f"geartrain: {build}; {args.load}; jobs/s, medians of {args.runs}")
    for c in contenders:
        print(f"  {c.label}")
    print(f"{'placement':42}" + "".join(f" {c.label[:16]:>16}" for c in contenders) + "  ratio")
    for placement in DRAIN if args.load == "drain" else PIPELINED:
        rates: dict[str, list[float]] = {c.label: [] for c in contenders}
        for _ in range(args.runs):
            for c in contenders:
                rates[c.label].append(
                    rate(c, args.geartrain_python, args.load, placement, args.jobs)
                )
        medians = {label: statistics.median(r) for label, r in rates.items()}
        best = max(medians[c.label] for c in contenders if c.kind == "gearmand")
        cells = "".join(f" {medians[c.label]:16,.0f}" for c in contenders)
        spread = "; ".join(
            f"{label}: " + " ".join(f"{r:,.0f}" for r in sorted(runs))
            for label, runs in rates.items()
        )
        print(f"{placement[0]:42}{cells}  {medians['geartrain'] / best:5.2f}   ({spread})")


if __name__ == "__main__":
    main()
