#!/usr/bin/env python3
"""Fault run: one topology under load (geartrain and PHP clients submitting
background jobs, geartrain workers running them) while faults hit it one after
another, then a check that the promises held.

Topologies: single-sqlite (the default queue), single-redis, single-postgres
(one server on a private Redis with an fsync-always AOF, or on a private
PostgreSQL made with initdb in a temporary directory), cluster-postgres,
cluster-redis (``--members`` servers with ``--cluster --cluster-lease 3``).

Faults (each where it applies; all that apply by default):
  kill           SIGKILL of the server (a random member), restarted on its port
  stop           SIGSTOP of a member for 8 s (past its lease) while it is busy, its
                 slow workers hold claimed jobs and a peer keeps sending it packets
  cut            the store link of the server (the first member) black-holed at a
                 proxy, then healed
  store-restart  the store killed (SIGKILL) and started again on its data
  disk-full      the state directory's tmpfs filled while the workers pause; once
                 the server refuses, the queue drains and the space is freed
  user           the server, started as root with --user, killed and started as the
                 user itself (and back): a user made for the run
(disk-full and user need root.)

The report, per run: jobs acknowledged, lost (acknowledged, never run), ran
twice (each with the fault it coincided with, if any), refused (QUEUE_ERROR and
other), and per fault its recovery time: from its end until every server it hit
acknowledged a submission sent after it.  Exit status 0 when nothing
acknowledged was lost, every job that ran twice was running (or unacknowledged)
at a fault, the servers recovered within --recover-within seconds of each
fault (after disk-full, refusing nothing from then on) and, with user, the
queue's files are the user's; 1 otherwise (docs/development.md, "Faults").

    python scripts/faults.py --topology cluster-redis --minutes 5 --report r.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from faults.inject import FAULTS, applies  # the tests' fault suite
from faults.scenario import Plan, run
from faults.topology import TOPOLOGIES


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--topology", choices=TOPOLOGIES, required=True)
    p.add_argument("--faults", help="comma-separated (default: all that apply)")
    p.add_argument("--minutes", type=float, default=5, help="faults for this long (5)")
    p.add_argument("--fault-every", type=float, default=10, help="mean seconds between (10)")
    p.add_argument("--steady", type=float, default=15, help="seconds with no fault at the end")
    p.add_argument("--members", type=int, default=3, help="servers of a cluster (3)")
    p.add_argument("--rate", type=float, default=50, help="submissions/s per client (50)")
    p.add_argument("--no-php", action="store_true", help="geartrain clients only")
    p.add_argument("--durability", choices=["crash", "power"], help="of the SQLite queue")
    p.add_argument("--recover-within", type=float, default=60, help="seconds (60)")
    p.add_argument("--seed", type=int, help="random seed (in the report)")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the clients' reconnect notices are expected
    # SIGTERM as Ctrl-C: the run stops its servers and stores, unmounts and removes its user.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    faults = args.faults.split(",") if args.faults else FAULTS
    plan = Plan(
        args.topology,
        tuple(f for f in faults if args.faults or applies(f, args.topology)),
        seconds=args.minutes * 60,
        fault_every=args.fault_every,
        steady=args.steady,
        members=args.members,
        rate=args.rate,
        php=not args.no_php,
        durability=args.durability or "",
        recover_within=args.recover_within,
        **({"seed": args.seed} if args.seed is not None else {}),
    )
    report = asyncio.run(run(plan))
    if args.report:
        args.report.write_text(json.dumps(report, indent=1) + "\n")
    summary = {k: v for k, v in report.items() if k not in ("twice", "logs", "plan")}
    print(json.dumps(summary, indent=1))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
