"""The scenarios of docs/performance.md.  Each takes a fresh server and a size, runs the same
load whatever the server, and returns its figures: the headline value first."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyload
from servers import CpuMeter, Server

from geartrain.sync import Admin

PHP_DIR = Path(__file__).parent / "php"
MIB = 1 << 20


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    unit: str
    higher_is_better: bool
    target: float
    """geartrain / gearmand ratio to reach (for "lower is better", gearmand / geartrain)."""
    run: Callable[[Server, bool], dict[str, float]]
    queue: tuple[str, ...] = ("-q", "builtin")
    """Queue flags for both servers, e.g. a SQLite file (``{tmp}`` is the run's
    temporary directory); empty: each server as a user starts it."""
    geartrain: tuple[str, ...] = ()
    """Flags for geartrain only (gearmand has no such flag), e.g. its durability level."""


def pinned(cpus: str, argv: list[str]) -> list[str]:
    """``argv`` run on the CPUs ``cpus`` (taskset); "": wherever the scheduler likes."""
    return ["taskset", "-c", cpus, *argv] if cpus else argv


def _nth(cpus: Sequence[str], i: int) -> str:
    return cpus[i] if i < len(cpus) else ""


def php_workers(
    port: int, count: int, max_jobs: int = 0, cpus: Sequence[str] = ()
) -> list[subprocess.Popen[bytes]]:
    """``count`` PHP workers; ``cpus``: one CPU list each (see :func:`pinned`)."""
    argv = ["php", str(PHP_DIR / "worker.php"), str(port), str(max_jobs)]
    procs = [subprocess.Popen(pinned(_nth(cpus, i), argv)) for i in range(count)]
    time.sleep(0.5)  # let them register and fall asleep
    return procs


def php_clients(
    port: int,
    clients: int,
    mode: str,
    jobs: int,
    batch: int = 100,
    size: int = 16,
    cpus: Sequence[str] = (),
) -> tuple[int, float]:
    """Run ``clients`` PHP clients at once (``cpus``: one CPU list each); returns
    (jobs done, wall seconds)."""
    argv = ["php", str(PHP_DIR / "client.php"), str(port), mode, str(jobs), str(batch), str(size)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(pinned(_nth(cpus, i), argv), stdout=subprocess.PIPE)
        for i in range(clients)
    ]
    done = bad = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        result = json.loads(out)
        done += result["done"]
        bad += result["bad"]
    elapsed = time.perf_counter() - start
    if bad:
        raise RuntimeError(f"{bad} jobs failed")
    return done, elapsed


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()


def _throughput(
    server: Server,
    mode: str,
    clients: int,
    jobs: int,
    batch: int = 100,
    worker_cpus: Sequence[str] = (),
    client_cpus: Sequence[str] = (),
) -> dict[str, float]:
    workers = php_workers(server.port, 2, cpus=worker_cpus)
    try:
        meter = CpuMeter(server)
        done, elapsed = php_clients(server.port, clients, mode, jobs, batch, cpus=client_cpus)
        cpu = meter.per_job(done)
    finally:
        stop(workers)
    return {"jobs_per_s": done / elapsed, **cpu, "jobs": done}


def foreground(server: Server, quick: bool) -> dict[str, float]:
    return _throughput(server, "fg", 4, 1000 if quick else 5000)


def pipelined(
    server: Server,
    quick: bool,
    worker_cpus: Sequence[str] = (),
    client_cpus: Sequence[str] = (),
) -> dict[str, float]:
    """Two PHP clients with 100 jobs in flight each, two PHP workers (``*_cpus``:
    where they run, see :func:`pinned`)."""
    jobs = 5000 if quick else 20000
    return _throughput(server, "batch", 2, jobs, 100, worker_cpus, client_cpus)


def queued(port: int, function: str = "bench") -> int:
    """The function's job count from the admin ``status`` command."""
    with Admin(f"127.0.0.1:{port}") as admin:
        return sum(line.total for line in admin.status() if line.function == function)


def submit_then_drain(
    server: Server, mode: str, clients: int, total: int, worker_cpus: Sequence[str] = ("", "")
) -> dict[str, float]:
    """Submit ``total`` jobs, then drain them with one PHP worker per ``worker_cpus``."""
    meter = CpuMeter(server)
    done, submit = php_clients(server.port, clients, mode, total // clients, batch=100)
    # Usually `done`, but libgearman's time-based unique keys (libuuid without uuidd)
    # now and then repeat across client processes, and both servers coalesce such jobs.
    done = queued(server.port)
    start = time.perf_counter()
    n = len(worker_cpus)
    argv = ["php", str(PHP_DIR / "worker.php"), str(server.port)]
    workers = [
        subprocess.Popen(pinned(cpus, [*argv, str(done // n + (i < done % n))]))
        for i, cpus in enumerate(worker_cpus)
    ]
    for proc in workers:
        proc.wait(600)
    drain = time.perf_counter() - start
    return {
        "jobs_per_s": done / (submit + drain),
        "submit_jobs_per_s": done / submit,
        "drain_jobs_per_s": done / drain,
        **meter.per_job(done),
        "jobs": done,
    }


def durable_pipelined(server: Server, quick: bool) -> dict[str, float]:
    # Headline: acknowledged submissions per second, the rate durability limits (each
    # JOB_CREATED waits for a commit).  The drain rate is bounded by the two workers.
    figures = submit_then_drain(server, "bgbatch", 2, 1000 if quick else 4000)
    return {"submit_jobs_per_s": figures.pop("submit_jobs_per_s"), **figures}


def durable_sync(server: Server, quick: bool) -> dict[str, float]:
    figures = submit_then_drain(server, "bg", 16, 1000 if quick else 4000)
    return {"submit_jobs_per_s": figures.pop("submit_jobs_per_s"), **figures}


def bg_load(clients: int, per_client: int) -> Callable[[Server, bool], dict[str, float]]:
    """`benchmarks/scenario.sh PORT 2 C bg N`: C PHP clients each submit with
    doBackground and wait, then two PHP workers drain; rate = submit + drain."""

    def run(server: Server, quick: bool) -> dict[str, float]:
        return submit_then_drain(server, "bg", clients, clients * (1000 if quick else per_client))

    return run


def latency(server: Server, quick: bool) -> dict[str, float]:
    samples = sorted(pyload.latency(server.port, 500 if quick else 3000))
    return {
        "p50_us": samples[len(samples) // 2],
        "p99_us": samples[int(len(samples) * 0.99)],
        "mean_us": statistics.fmean(samples),
    }


def idle_crowd(server: Server, quick: bool) -> dict[str, float]:
    with pyload.idle_workers(server.port, 1000):
        return _throughput(server, "fg", 100, 50 if quick else 200)


def payloads(size: int, jobs: int, background: bool) -> Callable[[Server, bool], dict[str, float]]:
    """Two clients each run ``jobs`` jobs of ``size`` bytes through two workers: foreground
    (the worker echoes the data back: a job's bytes cross the server twice each way), or
    background (submitted one at a time, the worker answers with nothing); raw sockets,
    as PHP's client tops out near 3 MiB/s whatever the server."""
    load = pyload.background if background else pyload.foreground

    def run(server: Server, quick: bool) -> dict[str, float]:
        meter = CpuMeter(server)
        done, elapsed = load(server.port, 2, max(1, jobs // 4) if quick else jobs, size)
        return {
            "mib_per_s": done * size / MIB / elapsed,
            **meter.per_job(done),
            "jobs_per_s": done / elapsed,
            "jobs": done,
        }

    return run


def memory(server: Server, quick: bool) -> dict[str, float]:
    jobs = 50_000 if quick else 200_000
    before = server.rss_bytes()
    seconds = pyload.fill(server.port, jobs)
    time.sleep(0.5)
    return {
        "bytes_per_job": (server.rss_bytes() - before) / jobs,
        "fill_jobs_per_s": jobs / seconds,
        "rss_bytes": server.rss_bytes(),
    }


DEFAULTS: tuple[str, ...] = ()
"""No queue flags: geartrain's durable SQLite queue at the crash level, gearmand's memory queue."""
SQLITE = ("-q", "libsqlite3", "--libsqlite3-db={tmp}/queue.sqlite3")
POWER = ("--durability=power",)
"""geartrain's power-loss level, the one that matches gearmand's libsqlite3 (SQLite's defaults)."""

SCENARIOS = [
    # Each server as a user starts it, no -q: the headline of docs/performance.md.
    Scenario(
        "1d",
        "defaults: foreground, 4 clients, 2 workers",
        "jobs/s",
        True,
        1.0,
        foreground,
        DEFAULTS,
    ),
    Scenario(
        "2d",
        "defaults: pipelined, 100 in flight, 2 workers",
        "jobs/s",
        True,
        1.5,
        pipelined,
        DEFAULTS,
    ),
    Scenario(
        "3d",
        "defaults: scenario.sh bg 2 2, submit+drain",
        "jobs/s",
        True,
        1.0,
        bg_load(2, 10_000),
        DEFAULTS,
    ),
    Scenario(
        "3e",
        "defaults: scenario.sh bg 2 8, submit+drain",
        "jobs/s",
        True,
        1.0,
        bg_load(8, 10_000),
        DEFAULTS,
    ),
    # Both servers with the memory queue (-q builtin).
    Scenario("1", "memory: foreground, 4 clients, 2 workers", "jobs/s", True, 1.0, foreground),
    Scenario("2", "memory: pipelined, 100 in flight, 2 workers", "jobs/s", True, 1.5, pipelined),
    Scenario(
        "3", "memory: scenario.sh bg 2 2, submit+drain", "jobs/s", True, 1.0, bg_load(2, 10_000)
    ),
    Scenario(
        "3m",
        "memory: scenario.sh bg 2 8, submit+drain",
        "jobs/s",
        True,
        1.0,
        bg_load(8, 10_000),
    ),
    # Power-loss safe: geartrain --durability=power against gearmand -q libsqlite3.
    Scenario(
        "4",
        "power: SQLite background, pipelined submits",
        "jobs/s",
        True,
        20.0,
        durable_pipelined,
        SQLITE,
        POWER,
    ),
    Scenario(
        "4s",
        "power: SQLite, 16 one-at-a-time clients",
        "jobs/s",
        True,
        20.0,
        durable_sync,
        SQLITE,
        POWER,
    ),
    Scenario(
        "4b",
        "power: SQLite, scenario.sh bg 2 2, submit+drain",
        "jobs/s",
        True,
        20.0,
        bg_load(2, 2_000),
        SQLITE,
        POWER,
    ),
    Scenario("5", "latency of one foreground job, idle server", "p50 µs", False, 1.0, latency),
    Scenario("6", "1,000 idle workers + 100 clients", "jobs/s", True, 1.5, idle_crowd),
    # Payloads of image sizes, both servers on the memory queue.
    Scenario(
        "7s", "64 KiB payloads, foreground", "MiB/s", True, 1.0, payloads(64 << 10, 2000, False)
    ),
    Scenario("7", "1 MiB payloads, foreground", "MiB/s", True, 1.5, payloads(MIB, 200, False)),
    Scenario(
        "7l", "16 MiB payloads, foreground", "MiB/s", True, 1.0, payloads(16 * MIB, 12, False)
    ),
    Scenario(
        "7sb", "64 KiB payloads, background", "MiB/s", True, 1.0, payloads(64 << 10, 2000, True)
    ),
    Scenario("7b", "1 MiB payloads, background", "MiB/s", True, 1.0, payloads(MIB, 200, True)),
    Scenario(
        "7lb", "16 MiB payloads, background", "MiB/s", True, 1.0, payloads(16 * MIB, 12, True)
    ),
    Scenario("8", "memory, 200,000 queued jobs", "bytes/job", False, 1.0, memory),
]
"""Keys, titles, units and targets; the figure named first in a result is the headline."""
