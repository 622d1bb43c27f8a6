"""What WAIT costs: background submissions/s of a geartrain server on Redis with
a replica, with ``wait_replicas=1`` in its store URL and without (a
measurement, not a test; docs/cluster.md, "High availability of the store").

    python benchmarks/wait_cost.py [--seconds 5] [--submitters 1,16] [--runs 3]

A Redis primary (fsync-always AOF) and its replica of the run's own, on free
ports in temporary directories; one server each time, on a key prefix of its
own; ``--submitters`` geartrain clients submitting one background job at a
time each, for ``--seconds``.  No workers: the jobs stay queued.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from geartrain import Client
from serverproc import start_geartrain  # the tests' server process and private stores
from store.dbservers import PrivateRedis


def redis_pair() -> tuple[PrivateRedis, PrivateRedis]:
    primary, replica = PrivateRedis(appendonly=True), PrivateRedis(appendonly=True)
    primary.start()
    replica.start()
    cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(replica.port)]
    subprocess.run(
        [*cli, "REPLICAOF", "127.0.0.1", str(primary.port)], check=True, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while (
        "master_link_status:up"
        not in subprocess.run(
            [*cli, "INFO", "replication"], capture_output=True, text=True, check=True
        ).stdout
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not connect")
        time.sleep(0.1)
    return primary, replica


async def submissions_per_second(port: int, submitters: int, seconds: float) -> float:
    count = 0
    end = time.monotonic() + seconds

    async def submit(client: Client) -> None:
        nonlocal count
        while time.monotonic() < end:
            await client.submit_background("cost", b"x" * 100)
            count += 1

    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(Client([f"127.0.0.1:{port}"]))
            for _ in range(submitters)
        ]
        start = time.monotonic()
        await asyncio.gather(*(submit(c) for c in clients))
        elapsed = time.monotonic() - start
    return count / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--submitters", default="1,16")
    p.add_argument("--runs", type=int, default=3)
    ns = p.parse_args()
    primary, replica = redis_pair()
    try:
        print(f"{'submitters':>10} {'without WAIT':>14} {'with WAIT':>12} {'cost':>6}")
        for n in (int(x) for x in ns.submitters.split(",")):
            rates: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(ns.runs):
                for wait in (False, True):
                    query = f"prefix=cost_{uuid.uuid4().hex[:8]}:"
                    query += "&wait_replicas=1&wait_timeout_ms=1000" if wait else ""
                    url = f"redis://127.0.0.1:{primary.port}/0?{query}"
                    server = start_geartrain(["--store-url", url])
                    try:
                        rate = asyncio.run(submissions_per_second(server.port, n, ns.seconds))
                        rates[wait].append(rate)
                    finally:
                        server.cleanup()
            plain, waited = (statistics.median(rates[w]) for w in (False, True))
            print(f"{n:>10} {plain:>12.0f}/s {waited:>10.0f}/s {1 - waited / plain:>6.0%}")
    finally:
        replica.cleanup()
        primary.cleanup()


if __name__ == "__main__":
    main()
