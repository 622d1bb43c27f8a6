"""What busy polling costs: server CPU and round-trip time under a paced load.

    python benchmarks/busy_poll.py [--rates 200,1000,3000,0] [--seconds 3] [--geartrain-python PATH]

After work, geartrain's event loop polls for up to `--busy-poll` µs before it
sleeps (docs/operations.md), which saves a wake-up per round trip and costs CPU
while it waits.  One client submits foreground jobs, one at a time, at a fixed
rate (0: as fast as it can) to one echo worker; this prints the server's CPU use
(% of one CPU) and the median round trip for gearmand and for geartrain with busy
polling at its default and off, each with its default queue.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import servers
from pyload import Conn, T, echo_worker

# (label, server, flags): each server with its default queue.
KINDS = [
    ("gearmand", "gearmand", ["-q", "builtin"]),
    ("geartrain", "geartrain", []),
    ("geartrain --busy-poll=0", "geartrain", ["--busy-poll=0"]),
]


def paced(port: int, rate: float, seconds: float) -> tuple[float, list[float]]:
    """Jobs/s achieved and round trips (µs) of one client submitting at ``rate``."""
    with echo_worker(port, b"paced"):
        conn = Conn(port)
        trips: list[float] = []
        start = time.perf_counter()
        due = start
        while (now := time.perf_counter()) < start + seconds:
            if rate:
                due += 1 / rate
                if due > now:
                    time.sleep(due - now)
            sent = time.perf_counter()
            conn.send(T.SUBMIT_JOB, b"paced", b"", b"x")
            while conn.read().type != T.WORK_COMPLETE:
                pass
            trips.append((time.perf_counter() - sent) * 1e6)
        elapsed = time.perf_counter() - start
        conn.sock.close()
    return len(trips) / elapsed, trips


def measure(kind: str, flags: list[str], python: str, rate: float, seconds: float) -> list[float]:
    server = servers.start(kind, flags, python)
    try:
        cpu = server.cpu_seconds()
        wall = time.perf_counter()
        achieved, trips = paced(server.port, rate, seconds)
        used = (server.cpu_seconds() - cpu) / (time.perf_counter() - wall)
        return [achieved, used * 100, statistics.median(trips)]
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="200,1000,3000,0")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--geartrain-python", default=sys.executable)
    args = parser.parse_args()
    print(f"geartrain: {servers.build_of(args.geartrain_python)}; medians of {args.runs} runs")
    print(f"{'rate asked':>10}  {'server':24} {'jobs/s':>7} {'CPU %':>6} {'p50 µs':>7}")
    for rate in (float(r) for r in args.rates.split(",")):
        runs: dict[str, list[list[float]]] = {label: [] for label, _, _ in KINDS}
        for _ in range(args.runs):
            for label, kind, flags in KINDS:
                runs[label].append(measure(kind, flags, args.geartrain_python, rate, args.seconds))
        for label, row in runs.items():
            achieved, cpu, p50 = (statistics.median(col) for col in zip(*row, strict=True))
            asked = f"{rate:,.0f}" if rate else "max"
            print(f"{asked:>10}  {label:24} {achieved:7,.0f} {cpu:6.1f} {p50:7.0f}")


if __name__ == "__main__":
    main()
