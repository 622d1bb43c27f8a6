"""Where a background payload job waits, seen from its peers, by server.

    python benchmarks/waits.py [--size 1048576] [--jobs 300] [--rounds 3]
        [--gearmand PATH ...] [--geartrain-python PATH]

The load of row 7b (two clients, each submitting background jobs one at a time and
waiting for JOB_CREATED, two workers that answer with nothing; raw sockets) with
every peer timing its own steps: the client's send of the packet, then its wait for
JOB_CREATED; the worker's wait from GRAB_JOB to a whole JOB_ASSIGN, and its NO_JOB
answers.  Rounds alternate between the servers; the figures are medians over all
jobs of all rounds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
import uuid
from typing import Any

import servers
from pyload import Conn, T, grab, payload


def _client(port: int, jobs: int, size: int, out: Any) -> None:
    conn = Conn(port)
    data = payload(size)
    sends, acks = [], []
    for _ in range(jobs):
        start = time.perf_counter()
        conn.send(T.SUBMIT_JOB_BG, b"lat", str(uuid.uuid4()).encode(), data)
        sent = time.perf_counter()
        while conn.read().type != T.JOB_CREATED:
            pass
        sends.append(sent - start)
        acks.append(time.perf_counter() - sent)
    out.put(("client", sends, acks))


def _worker(port: int, jobs: int, ready: Any, out: Any) -> None:
    conn = Conn(port)
    conn.send(T.CAN_DO, b"lat")
    ready.set()
    waits, no_job = [], 0
    while len(waits) < jobs:
        start = time.perf_counter()
        packet = grab(conn)
        if packet is None:
            no_job += 1
            continue
        waits.append(time.perf_counter() - start)
        conn.send(T.WORK_COMPLETE, packet.args[0], b"")
    out.put(("worker", waits, no_job))


def measure(port: int, jobs: int, size: int) -> dict[str, Any]:
    """One round: 2 workers, then 2 clients of ``jobs`` jobs each."""
    out: multiprocessing.Queue[Any] = multiprocessing.Queue()
    ready = [multiprocessing.Event() for _ in range(2)]
    procs = [
        multiprocessing.Process(target=_worker, args=(port, jobs, event, out)) for event in ready
    ]
    for proc in procs:
        proc.start()
    for event in ready:
        event.wait(10)
    time.sleep(0.2)
    start = time.perf_counter()
    clients = [
        multiprocessing.Process(target=_client, args=(port, jobs, size, out)) for _ in range(2)
    ]
    for proc in clients:
        proc.start()
    parts = [out.get(timeout=600) for _ in range(4)]
    elapsed = time.perf_counter() - start
    for proc in procs + clients:
        proc.join()
    got: dict[str, Any] = {"jobs_per_s": 2 * jobs / elapsed, "send": [], "ack": [], "grab": []}
    no_job = 0
    for kind, first, second in parts:
        if kind == "client":
            got["send"] += first
            got["ack"] += second
        else:
            got["grab"] += first
            no_job += second
    got["no_job_per_job"] = no_job / (2 * jobs)
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    servers.payload_load_options(parser, jobs=300)
    args = parser.parse_args()
    builtin = ["-q", "builtin"]
    contenders = [servers.Contender("geartrain", "geartrain", builtin)]
    for path in args.gearmand or [servers.GEARMAND]:
        label = f"gearmand {servers.gearmand_version(path)}"
        contenders.append(servers.Contender(label, "gearmand", builtin, path))
    rounds = servers.alternate(
        contenders,
        args.rounds,
        args.geartrain_python,
        lambda port: measure(port, args.jobs, args.size),
    )
    print(
        f"{args.size} bytes, 2 clients x {args.jobs} background jobs, 2 workers; "
        f"{args.rounds} alternating rounds; medians, µs per job"
    )
    print(
        f"{'server':32} {'jobs/s':>8} {'client send':>12} {'JOB_CREATED':>12} "
        f"{'GRAB->ASSIGN':>13} {'NO_JOB/job':>11}"
    )
    for label, results in rounds.items():

        def median_us(name: str, results: list[dict[str, Any]] = results) -> float:
            return statistics.median(x for r in results for x in r[name]) * 1e6

        rate = statistics.median(r["jobs_per_s"] for r in results)
        no_job = statistics.median(r["no_job_per_job"] for r in results)
        print(
            f"{label:32} {rate:8,.0f} {median_us('send'):12,.0f} {median_us('ack'):12,.0f} "
            f"{median_us('grab'):13,.0f} {no_job:11.2f}"
        )


if __name__ == "__main__":
    main()
