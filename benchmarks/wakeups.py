"""How often the peers of a large-payload load wait and are woken, per job, by server.

    python benchmarks/wakeups.py [--size 1048576] [--jobs 100] [--rounds 3]
        [--gearmand PATH ...] [--geartrain-python PATH] [--geartrain-flags FLAGS]

The load of rows 7 and 7b (two clients, each running foreground jobs one at a time
through two echo workers, raw sockets) with every peer counting for itself: voluntary
context switches (each is a wait in the kernel for the server: a recv with nothing
there yet, a send with the server's receive buffer full), recv calls and NO_JOB
answers.  These are counts, not seconds, so they hold on a loaded machine.  Each
gearmand runs twice: as a user starts it (several I/O threads) and with
``--threads=0`` (one thread does all the I/O, as geartrain's event loop does), which
shows what the difference is due to.  Rounds alternate between the servers; the
figures are medians.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from typing import Any

import servers
from pyload import Conn, T, grab, payload

from geartrain.protocol import Packet


def _switches() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split(":")[1])
    return 0


class _Counted(Conn):
    """A connection that counts its recv calls."""

    recvs = 0

    def read(self) -> Packet:
        while True:
            event = self.decoder.next_event()
            if isinstance(event, Packet):
                return event
            self.recvs += 1
            got = self.sock.recv_into(self.decoder.get_buffer())
            if not got:
                raise ConnectionError("closed")
            self.decoder.buffer_updated(got)


def _worker(index: int, port: int, ready: Any, go: Any, stop: Any, out: Any) -> None:
    conn = _Counted(port)
    conn.send(T.CAN_DO, b"lat")
    ready.set()
    go.wait()
    switches, recvs, no_jobs = _switches(), conn.recvs, 0
    while not stop.is_set():
        packet = grab(conn)
        if packet is None:
            no_jobs += 1
            continue
        conn.send(T.WORK_COMPLETE, packet.args[0], packet.args[3])
        # The last job's result is out: report before waiting for work that never comes.
        out.put((index, _switches() - switches, conn.recvs - recvs, no_jobs))


def _client(port: int, jobs: int, size: int, go: Any, out: Any) -> None:
    conn = _Counted(port)
    data = payload(size)
    go.wait()
    switches, recvs = _switches(), conn.recvs
    for _ in range(jobs):
        conn.send(T.SUBMIT_JOB, b"lat", b"", data)
        while conn.read().type != T.WORK_COMPLETE:
            pass
    out.put((_switches() - switches, conn.recvs - recvs))


def measure(port: int, jobs: int, size: int) -> dict[str, float]:
    """Per-job counts of two clients x ``jobs`` foreground jobs through two workers."""
    ctx = multiprocessing.get_context("fork")
    go, stop = ctx.Event(), ctx.Event()
    worker_out: Any = ctx.Queue()
    client_out: Any = ctx.Queue()
    readies = [ctx.Event() for _ in range(2)]
    workers = [
        ctx.Process(target=_worker, args=(i, port, r, go, stop, worker_out), daemon=True)
        for i, r in enumerate(readies)
    ]
    for proc in workers:
        proc.start()
    for ready in readies:
        ready.wait(10)
    clients = [ctx.Process(target=_client, args=(port, jobs, size, go, client_out)) for _ in "ab"]
    for proc in clients:
        proc.start()
    time.sleep(0.5)  # everyone connected and the workers asleep
    start = time.perf_counter()
    go.set()
    client_counts = [client_out.get(timeout=600) for _ in clients]
    elapsed = time.perf_counter() - start
    stop.set()
    for proc in clients:
        proc.join()
    time.sleep(0.2)  # the queue's feeder threads deliver the last reports
    # Each worker reports its running totals after every job: keep the last of each.
    latest: dict[int, tuple[int, int, int]] = {}
    while not worker_out.empty():
        index, *counts = worker_out.get()
        latest[index] = (counts[0], counts[1], counts[2])
    for proc in workers:
        proc.terminate()
        proc.join()
    done = 2 * jobs
    return {
        "client_wakes": sum(c[0] for c in client_counts) / done,
        "client_recvs": sum(c[1] for c in client_counts) / done,
        "worker_wakes": sum(r[0] for r in latest.values()) / done,
        "worker_recvs": sum(r[1] for r in latest.values()) / done,
        "worker_no_job": sum(r[2] for r in latest.values()) / done,
        "jobs_per_s": done / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    servers.payload_load_options(parser, jobs=100)
    parser.add_argument(
        "--geartrain-flags", default="", help='a second geartrain row, e.g. "--busy-poll=0"'
    )
    args = parser.parse_args()
    builtin = ["-q", "builtin"]
    contenders = [servers.Contender("geartrain", "geartrain", builtin)]
    if args.geartrain_flags:
        extra = args.geartrain_flags.split()
        label = f"geartrain {args.geartrain_flags}"
        contenders.append(servers.Contender(label, "geartrain", [*builtin, *extra]))
    for path in args.gearmand or [servers.GEARMAND]:
        label = f"gearmand {servers.gearmand_version(path)}"
        contenders.append(servers.Contender(label, "gearmand", builtin, path))
        threads0 = [*builtin, "--threads=0"]
        contenders.append(servers.Contender(f"{label} --threads=0", "gearmand", threads0, path))
    results = servers.alternate(
        contenders,
        args.rounds,
        args.geartrain_python,
        lambda port: measure(port, args.jobs, args.size),
    )
    print(
        f"{args.size} bytes, 2 clients x {args.jobs} foreground jobs, 2 echo workers; "
        f"medians of {args.rounds} alternating rounds, per job"
    )
    print(
        f"{'server':40} {'client wakes':>12} {'worker wakes':>12} {'all':>6} "
        f"{'client recvs':>12} {'worker recvs':>12} {'NO_JOB':>7} {'jobs/s':>7}"
    )
    for label, runs in results.items():
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print(
            f"{label:40} {med['client_wakes']:12.2f} {med['worker_wakes']:12.2f} "
            f"{med['client_wakes'] + med['worker_wakes']:6.2f} {med['client_recvs']:12.2f} "
            f"{med['worker_recvs']:12.2f} {med['worker_no_job']:7.2f} {med['jobs_per_s']:7.0f}"
        )


if __name__ == "__main__":
    main()
