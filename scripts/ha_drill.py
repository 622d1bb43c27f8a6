#!/usr/bin/env python3
"""Failover drill of the store: servers on a replicated store under a load of
geartrain and PHP clients and workers, the store's primary killed (SIGKILL),
the replica promoted; then the counts and the times.

Cases (all by default):
  pg-sync       PostgreSQL primary and a synchronous standby (synchronous_standby_names
                '*'), promoted by hand (pg_ctl promote) a second after the kill
  pg-async      the same with an asynchronous standby
  redis-wait    Redis primary, a replica and three Sentinels; the servers' URL asks
                for WAIT on one replica after each write; the Sentinels promote the
                replica and the old primary comes back as its replica
  redis-nowait  the same without WAIT
  redis-wait2   WAIT on one of two replicas: after the failover the other one serves
each on a single server (the PostgreSQL one at --durability power: its commits
wait for the standby) and on a cluster of --members servers.

Per run: jobs acknowledged, lost (acknowledged, never run), ran twice (all at
the failover, or a promise broke), refused (QUEUE_ERROR) and unanswered, and
the seconds from the kill until every server acknowledged a submission again.
Exit status 0 when every run kept the promises (docs/cluster.md, "High
availability of the store").

    python scripts/ha_drill.py --cases pg-sync,redis-wait --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from ha.drill import Drill, Replicas, run, summary  # the tests' drill
from ha.replicas import PostgresReplicas, RedisSentinels

CASES = ("pg-sync", "pg-async", "redis-wait", "redis-nowait", "redis-wait2")


def replicas(case: str) -> Replicas:
    if case.startswith("pg-"):
        return PostgresReplicas(sync=case == "pg-sync").start()
    replicas = 2 if case == "redis-wait2" else 1
    return RedisSentinels(wait=case != "redis-nowait", replicas=replicas).start()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated (default: all)")
    p.add_argument("--shapes", default="single,cluster", help="single, cluster or both")
    p.add_argument("--members", type=int, default=3, help="servers of a cluster (3)")
    p.add_argument("--before", type=float, default=5, help="seconds of load before the kill")
    p.add_argument("--after", type=float, default=5, help="seconds of load after recovery")
    p.add_argument("--rate", type=float, default=50, help="submissions/s per client (50)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each case (1)")
    p.add_argument("--no-php", action="store_true", help="geartrain clients only")
    p.add_argument("--report", type=Path, help="write every report here (JSON)")
    ns = p.parse_args(argv)
    for case in ns.cases.split(","):
        if case not in CASES:
            p.error(f"unknown case {case!r} (known: {', '.join(CASES)})")
    return ns


async def main(ns: argparse.Namespace) -> int:
    reports = []
    for case in ns.cases.split(","):
        for shape in ns.shapes.split(","):
            kind = "postgres" if case.startswith("pg-") else "redis"
            drill = Drill(
                f"{shape}-{kind}",
                members=ns.members,
                before=ns.before,
                after=ns.after,
                rate=ns.rate,
                php=not ns.no_php,
                promote_after=1.0 if kind == "postgres" else 0.0,
                durability="power" if kind == "postgres" and shape == "single" else "",
            )
            for _ in range(ns.repeat):
                store = await asyncio.to_thread(replicas, case)
                try:
                    report = await run(drill, store)
                finally:
                    await asyncio.to_thread(store.cleanup)
                report["case"] = case
                reports.append(report)
                mark = "ok  " if report["ok"] else "FAIL"
                print(f"{mark} {case:12} {shape:7} {summary(report)}", flush=True)
                for failure in report["failures"]:  # type: ignore[attr-defined]
                    print(f"     {failure}", flush=True)
    if ns.report is not None:
        ns.report.write_text(json.dumps(reports, indent=1))
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.CRITICAL)  # clients and workers retry through it
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
