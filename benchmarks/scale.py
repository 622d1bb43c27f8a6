"""How cost grows with the work: geartrain beside one or more gearmands in one run.

    python benchmarks/scale.py [--gearmand PATH ...] [--geartrain-python PATH | --installed]
                               [--only million,conns,functions,registrations] [--jobs 1000000]
                               [--conns 10000] [--functions 10,1000,10000] [--runs 3]

- million: a million background jobs (100 bytes, a 36-byte unique key) pipelined from a
  few connections with no worker connected: the submission rate overall and over the
  last tenth (once the queue is deep), the server's CPU per job, RSS per queued job,
  then the time for workers to drain them; for geartrain's default (SQLite) queue also
  a restart with all of them stored: until it answers, until the first job is handed
  out and until all are served.
- conns: RSS per idle connection with ``--conns`` connected, and a healthy client's
  round trips (ECHO, and one foreground job through a worker) before and while they are.
- registrations (only when asked): server memory per function of one worker registered
  for ``--registrations`` functions that have no job.
- functions: workers each registered for N functions (10, 1,000, 10,000): background
  submissions spread over the functions and their drain, and foreground jobs one at a
  time (workers asleep between jobs), as server CPU per job.

CPU is the server's user + system time from /proc (all threads). geartrain also runs
with ``--busy-poll=0`` where waiting is measured, so the CPU that busy polling spends
while it waits stays in the same table. Each server is named with its ``--version``.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import servers
from pyload import Conn, T, grab

from geartrain.protocol import REQ, Packet, pack

RESULTS = Path(__file__).parent / "results"


@dataclass
class Spec:
    """One server as the tables name it: which program, which flags."""

    label: str
    kind: str  # "gearmand" or "geartrain"
    program: str  # gearmand's binary, or geartrain's python
    flags: list[str] = field(default_factory=list)

    def start(self, queue: list[str], state_dir: Path | None = None) -> servers.Server:
        if self.kind == "gearmand":
            flags = [*queue, *self.flags]
            return servers.start("gearmand", flags, state_dir=state_dir, gearmand=self.program)
        return servers.start("geartrain", [*queue, *self.flags], self.program, state_dir)


def gearmand_label(path: str) -> str:
    return f"gearmand {servers.gearmand_version(path)}"


def raise_fd_limit(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def settled_rss(server: servers.Server, seconds: float = 3.5) -> int:
    """RSS once the server has been idle a while (geartrain gives memory back after 2 s)."""
    time.sleep(seconds)
    return server.rss_bytes()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# -- load processes ---------------------------------------------------------------


def _submitter(
    port: int,
    jobs: int,
    functions: list[bytes],
    window: int,
    start: Any,
    done: Any,
) -> None:
    """Pipeline ``jobs`` SUBMIT_JOB_BG (``window`` in flight), spread over ``functions``;
    counts acknowledgements into ``done``."""
    data = b"x" * 100
    packets = [
        pack(
            REQ, T.SUBMIT_JOB_BG, (functions[i % len(functions)], str(uuid.uuid4()).encode(), data)
        )
        for i in range(jobs)
    ]
    conn = Conn(port)
    start.wait()
    decoder = conn.decoder
    acked = 0
    sent = 0
    while acked < jobs:
        if sent < jobs and sent - acked < window:
            upto = min(jobs, acked + window)
            conn.sock.sendall(b"".join(packets[sent:upto]))
            sent = upto
        chunk = conn.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        decoder.feed(chunk)
        got = 0
        while isinstance(event := decoder.next_event(), Packet):
            if event.type != T.JOB_CREATED:
                raise RuntimeError(f"unexpected {event.type!r}")
            got += 1
        acked += got
        with done.get_lock():
            done.value += got
    conn.sock.close()


def _drainer(port: int, functions: list[bytes], ready: Any, go: Any, done: Any, stop: Any) -> None:
    """A worker that registers ``functions``, and once ``go`` grabs and completes jobs
    until ``stop``; counts registered workers into ``ready``, jobs into ``done``."""
    conn = Conn(port)
    conn.sock.sendall(b"".join(pack(REQ, T.CAN_DO, (f,)) for f in functions))
    conn.send(T.ECHO_REQ, b"registered")
    while conn.read().type != T.ECHO_RES:
        pass
    with ready.get_lock():
        ready.value += 1
    go.wait()
    grab = pack(REQ, T.GRAB_JOB, ())
    conn.sock.sendall(grab)
    while not stop.is_set():
        packet = conn.read()
        if packet.type == T.JOB_ASSIGN:
            conn.sock.sendall(pack(REQ, T.WORK_COMPLETE, (packet.args[0], b"")) + grab)
            with done.get_lock():
                done.value += 1
        elif packet.type == T.NO_JOB:
            conn.sock.sendall(pack(REQ, T.PRE_SLEEP, ()))
        elif packet.type == T.NOOP:
            conn.sock.sendall(grab)


@dataclass
class Drainers:
    """Worker processes, registered; ``go`` starts their grabbing."""

    done: Any
    go: Any


@contextmanager
def drainers(port: int, count: int, functions: list[bytes], go: bool = True) -> Iterator[Drainers]:
    ready, done = multiprocessing.Value("q", 0), multiprocessing.Value("q", 0)
    start, stop = multiprocessing.Event(), multiprocessing.Event()
    procs = [
        multiprocessing.Process(
            target=_drainer, args=(port, functions, ready, start, done, stop), daemon=True
        )
        for _ in range(count)
    ]
    for proc in procs:
        proc.start()
    try:
        deadline = time.monotonic() + 120
        while ready.value < count:
            if time.monotonic() > deadline:
                raise TimeoutError("workers did not register")
            time.sleep(0.01)
        if go:
            start.set()
        yield Drainers(done, start)
    finally:
        stop.set()
        for proc in procs:
            proc.kill()
            proc.join()


def wait_count(done: Any, want: int, timeout: float, server: servers.Server) -> float:
    """Seconds until ``done`` reaches ``want``."""
    start = time.perf_counter()
    while done.value < want:
        if server.proc.poll() is not None:
            raise RuntimeError("server exited")
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{done.value} of {want} after {timeout} s")
        time.sleep(0.01)
    return time.perf_counter() - start


class Sampler:
    """(seconds, server CPU seconds, count) every 0.1 s, to see how the rate changes."""

    def __init__(self, server: servers.Server, done: Any) -> None:
        self.server, self.done = server, done
        self.samples: list[tuple[float, float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.take()
            self._stop.wait(0.1)

    def take(self) -> None:
        self.samples.append((time.perf_counter(), self.server.cpu_seconds(), self.done.value))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.take()

    def span(self, lo: float, hi: float) -> tuple[float, float]:
        """(jobs/s, CPU µs per job) between the samples nearest fractions ``lo`` and
        ``hi`` of the final count."""
        total = self.samples[-1][2]
        first = next(s for s in self.samples if s[2] >= lo * total)
        last = next(s for s in self.samples if s[2] >= hi * total)
        jobs = last[2] - first[2]
        if jobs <= 0 or last[0] <= first[0]:
            return 0.0, 0.0
        return jobs / (last[0] - first[0]), (last[1] - first[1]) / jobs * 1e6


# -- million --------------------------------------------------------------------


def submit(
    server: servers.Server, jobs: int, functions: list[bytes], clients: int = 4
) -> dict[str, float]:
    """Pipelined background submissions from ``clients`` connections, no worker."""
    start, done = multiprocessing.Event(), multiprocessing.Value("q", 0)
    share = [jobs // clients + (i < jobs % clients) for i in range(clients)]
    procs = [
        multiprocessing.Process(
            target=_submitter, args=(server.port, n, functions, 1000, start, done), daemon=True
        )
        for n in share
    ]
    for proc in procs:
        proc.start()
    time.sleep(1.0 + jobs / 400_000)  # the packets are built before the start
    with Sampler(server, done) as sampler:
        start.set()
        wait_count(done, jobs, 3600, server)
    for proc in procs:
        proc.join()
    rate, cpu = sampler.span(0.0, 1.0)
    deep_rate, deep_cpu = sampler.span(0.9, 1.0)
    first_rate, first_cpu = sampler.span(0.0, 0.1)
    return {
        "submit_jobs_per_s": rate,
        "submit_cpu_us_per_job": cpu,
        "submit_first_tenth_jobs_per_s": first_rate,
        "submit_first_tenth_cpu_us": first_cpu,
        "submit_last_tenth_jobs_per_s": deep_rate,
        "submit_last_tenth_cpu_us": deep_cpu,
    }


def drain(
    server: servers.Server, jobs: int, functions: list[bytes], workers: int = 2
) -> dict[str, float]:
    with drainers(server.port, workers, functions, go=False) as crew:
        cpu = server.cpu_seconds()
        crew.go.set()
        seconds = wait_count(crew.done, jobs, 3600, server)
        used = server.cpu_seconds() - cpu
    return {
        "drain_seconds": seconds,
        "drain_jobs_per_s": jobs / seconds,
        "drain_cpu_us_per_job": used / jobs * 1e6,
    }


def restart(spec: Spec, server: servers.Server, jobs: int, state: Path) -> dict[str, float]:
    """Stop a server holding ``jobs`` stored jobs, start it on the same queue file and
    time until it answers, until a worker gets the first job and until all are served."""
    server.stop()
    launched = time.perf_counter()
    again = spec.start([], state_dir=state)
    answered = time.perf_counter() - launched
    loading_cpu = again.cpu_seconds()
    try:
        conn = Conn(again.port)
        conn.send(T.CAN_DO, b"scale")
        conn.send(T.GRAB_JOB)
        while (packet := conn.read()).type == T.NO_JOB:
            conn.send(T.GRAB_JOB)
        first = time.perf_counter() - launched
        conn.send(T.WORK_COMPLETE, packet.args[0], b"")
        conn.sock.close()
        cpu = again.cpu_seconds()
        with drainers(again.port, 2, [b"scale"]) as crew:
            wait_count(crew.done, jobs - 1, 3600, again)
        served = time.perf_counter() - launched
        return {
            "restart_answers_s": answered,
            "restart_loading_cpu_s": loading_cpu,
            "restart_first_job_s": first,
            "restart_all_served_s": served,
            "restart_drain_cpu_us_per_job": (again.cpu_seconds() - cpu) / jobs * 1e6,
        }
    finally:
        again.stop()


def million(spec: Spec, queue: str, jobs: int) -> dict[str, float]:
    state = Path(tempfile.mkdtemp(prefix="gt-scale-"))
    flags = ["-q", "builtin"] if queue == "memory" else []
    server = spec.start(flags, state_dir=state)
    try:
        base = settled_rss(server, 1.0)
        figures = submit(server, jobs, [b"scale"])
        figures["rss_bytes_per_job"] = (settled_rss(server) - base) / jobs
        if queue == "default":
            figures.update(restart(spec, server, jobs, state))
        else:
            figures.update(drain(server, jobs, [b"scale"]))
        return figures
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


# -- conns ----------------------------------------------------------------------


def _echo_worker(port: int, ready: Any) -> None:
    conn = Conn(port)
    conn.send(T.CAN_DO, b"probe")
    ready.set()
    while True:
        packet = grab(conn, T.GRAB_JOB)
        if packet is not None:
            conn.send(T.WORK_COMPLETE, packet.args[0], packet.args[2])


def round_trips(port: int, count: int) -> dict[str, float]:
    """A healthy client's ECHO and foreground-job round trips (µs), 1 ms apart."""
    conn = Conn(port)
    echo: list[float] = []
    job: list[float] = []
    for _ in range(count):
        sent = time.perf_counter()
        conn.send(T.ECHO_REQ, b"ping")
        conn.read()
        echo.append((time.perf_counter() - sent) * 1e6)
        time.sleep(0.001)
        sent = time.perf_counter()
        conn.send(T.SUBMIT_JOB, b"probe", b"", b"x")
        while conn.read().type != T.WORK_COMPLETE:
            pass
        job.append((time.perf_counter() - sent) * 1e6)
        time.sleep(0.001)
    conn.sock.close()
    return {
        "echo_p50_us": statistics.median(echo),
        "echo_p99_us": pct(echo, 0.99),
        "job_p50_us": statistics.median(job),
        "job_p99_us": pct(job, 0.99),
    }


def crowd(spec: Spec, count: int, probes: int) -> dict[str, float]:
    # Both default to a listen backlog of 32: a client opening connections in a row
    # overflows it whenever the server waits for a core, and each dropped SYN costs a
    # second; the backlog is not what is measured.
    server = spec.start(["-q", "builtin", "-f", str(count + 1000), "-b", "4096"])
    ready = multiprocessing.Event()
    worker = multiprocessing.Process(target=_echo_worker, args=(server.port, ready), daemon=True)
    worker.start()
    try:
        ready.wait(10)
        alone = round_trips(server.port, probes)
        base = settled_rss(server, 1.0)
        socks = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            socks.append(sock)
        for sock in socks:  # each says one thing, so the server has read from all
            sock.sendall(pack(REQ, T.ECHO_REQ, (b"hello",)))
        for sock in socks:
            sock.recv(64)
        per_conn = (settled_rss(server) - base) / count
        cpu = server.cpu_seconds()
        wall = time.perf_counter()
        crowded = round_trips(server.port, probes)
        busy = (server.cpu_seconds() - cpu) / (time.perf_counter() - wall)
        for sock in socks:
            sock.close()
        figures = {"rss_bytes_per_conn": per_conn, "cpu_percent_while_probing": busy * 100}
        figures.update({f"alone_{k}": v for k, v in alone.items()})
        figures.update({f"crowd_{k}": v for k, v in crowded.items()})
        return figures
    finally:
        worker.kill()
        worker.join()
        server.stop()


# -- functions ------------------------------------------------------------------


def _fg_client(port: int, functions: list[bytes], seconds: float, out: Any, seed: int) -> None:
    rng = random.Random(seed)
    conn = Conn(port)
    count = 0
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        conn.send(T.SUBMIT_JOB, rng.choice(functions), b"", b"x")
        while conn.read().type != T.WORK_COMPLETE:
            pass
        count += 1
    out.put(count)


def many_functions(spec: Spec, *, n: int, jobs: int, seconds: float) -> dict[str, float]:
    """Two workers each registered for ``n`` functions: background jobs submitted over
    the functions while they are not grabbing, then drained; then foreground jobs one
    at a time from two clients, the workers asleep between them."""
    functions = [b"fn-%05d" % i for i in range(n)]
    server = spec.start(["-q", "builtin"])
    try:
        figures: dict[str, float] = {}
        with drainers(server.port, 2, functions, go=False) as crew:
            got = submit(server, jobs, functions, clients=2)
            figures["bg_submit_jobs_per_s"] = got["submit_jobs_per_s"]
            figures["bg_submit_cpu_us_per_job"] = got["submit_cpu_us_per_job"]
            cpu = server.cpu_seconds()
            crew.go.set()
            drained = wait_count(crew.done, jobs, 3600, server)
            figures["bg_drain_jobs_per_s"] = jobs / drained
            figures["bg_drain_cpu_us_per_job"] = (server.cpu_seconds() - cpu) / jobs * 1e6
            time.sleep(0.5)  # asleep
            out: multiprocessing.Queue[int] = multiprocessing.Queue()
            clients = [
                multiprocessing.Process(
                    target=_fg_client, args=(server.port, functions, seconds, out, i)
                )
                for i in range(2)
            ]
            cpu = server.cpu_seconds()
            for proc in clients:
                proc.start()
            served = sum(out.get(timeout=seconds + 60) for _ in clients)
            for proc in clients:
                proc.join()
            figures["fg_jobs_per_s"] = served / seconds
            figures["fg_cpu_us_per_job"] = (server.cpu_seconds() - cpu) / served * 1e6
        return figures
    finally:
        server.stop()


def registrations(spec: Spec, n: int) -> dict[str, float]:
    """RSS per function of one worker registered for ``n`` functions with no job."""
    server = spec.start(["-q", "builtin"])
    try:
        base = settled_rss(server, 1.0)
        conn = Conn(server.port)
        conn.sock.sendall(b"".join(pack(REQ, T.CAN_DO, (b"fn-%06d" % i,)) for i in range(n)))
        conn.send(T.ECHO_REQ, b"registered")
        while conn.read().type != T.ECHO_RES:
            pass
        figures = {"rss_bytes_per_function": (settled_rss(server) - base) / n}
        conn.sock.close()
        return figures
    finally:
        server.stop()


# -- driver ---------------------------------------------------------------------


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def alternate(
    specs: list[Spec], runs: int, name: str, once: Callable[[Spec], dict[str, float]]
) -> dict[str, Any]:
    """``runs`` rounds, the order of servers reversed every other round; medians."""
    got: dict[str, list[dict[str, float]]] = {s.label: [] for s in specs}
    for i in range(runs):
        for spec in specs if i % 2 == 0 else specs[::-1]:
            figures = once(spec)
            got[spec.label].append(figures)
            shown = ", ".join(f"{k} {v:,.1f}" for k, v in figures.items())
            print(f"  {name} {spec.label} run {i + 1}: {shown}", flush=True)
    out: dict[str, dict[str, Any]] = {
        label: {"median": medians(r), "runs": r} for label, r in got.items()
    }
    for label, entry in out.items():
        shown = ", ".join(f"{k} {v:,.1f}" for k, v in entry["median"].items())
        print(f"{name} {label} median: {shown}", flush=True)
    return out


def save(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--gearmand", action="append", help="a gearmand binary (repeat for several)"
    )
    parser.add_argument(
        "--gearmand-flags", default="", help="added to each gearmand's command line"
    )
    parser.add_argument("--geartrain-python", default=sys.executable)
    parser.add_argument(
        "--installed", action="store_true", help="install geartrain as `pip install .` does"
    )
    parser.add_argument("--only", default="million,conns,functions")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="million: jobs queued")
    parser.add_argument("--conns", type=int, default=10_000)
    parser.add_argument("--probes", type=int, default=1000, help="conns: round trips timed")
    parser.add_argument("--functions", default="10,1000,10000")
    parser.add_argument("--fn-jobs", type=int, default=50_000, help="functions: bg jobs")
    parser.add_argument(
        "--registrations", type=int, default=100_000, help="registrations: functions"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="functions: fg seconds")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--servers",
        default="geartrain,busy-poll=0,gearmand",
        help="which to run: geartrain, busy-poll=0 (geartrain without it), gearmand",
    )
    parser.add_argument("--json", type=Path, help="default: benchmarks/results/<time>-scale.json")
    args = parser.parse_args()
    raise_fd_limit(args.conns + 2000)
    python = args.geartrain_python
    if args.installed:
        python = servers.install(Path(__file__).resolve().parent.parent)
    gearmands = args.gearmand or [servers.GEARMAND]
    chosen = args.servers.split(",")
    extra = args.gearmand_flags.split()
    specs = [
        Spec(" ".join([gearmand_label(path), *extra]), "gearmand", path, extra)
        for path in gearmands
    ]
    specs = specs if "gearmand" in chosen else []
    geartrain = [Spec("geartrain", "geartrain", python)] if "geartrain" in chosen else []
    no_poll = [Spec("geartrain --busy-poll=0", "geartrain", python, ["--busy-poll=0"])]
    no_poll = no_poll if "busy-poll=0" in chosen else []
    build = servers.build_of(python)
    print(f"geartrain: {build} ({python}); gearmand: {', '.join(gearmands)}", flush=True)
    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "geartrain_build": build,
        "gearmands": {s.label: s.program for s in specs},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    path = args.json or RESULTS / time.strftime("%Y%m%d-%H%M%S-scale.json", time.gmtime())
    only = args.only.split(",")
    if "million" in only:
        results["million_memory"] = alternate(
            [*geartrain, *specs],
            args.runs,
            "million memory",
            lambda s: million(s, "memory", args.jobs),
        )
        save(path, results)
        results["million_default"] = alternate(
            geartrain, args.runs, "million default", lambda s: million(s, "default", args.jobs)
        )
        save(path, results)
    if "conns" in only:
        results["conns"] = alternate(
            [*geartrain, *no_poll, *specs],
            args.runs,
            "conns",
            lambda s: crowd(s, args.conns, args.probes),
        )
        save(path, results)
    if "registrations" in only:
        results["registrations"] = alternate(
            [*geartrain, *specs],
            args.runs,
            "registrations",
            lambda s: registrations(s, args.registrations),
        )
        save(path, results)
    if "functions" in only:
        for n in (int(x) for x in args.functions.split(",")):
            results[f"functions_{n}"] = alternate(
                [*geartrain, *no_poll, *specs],
                args.runs,
                f"functions {n}",
                functools.partial(many_functions, n=n, jobs=args.fn_jobs, seconds=args.seconds),
            )
            save(path, results)
    save(path, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main()
