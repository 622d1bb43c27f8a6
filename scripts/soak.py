#!/usr/bin/env python3
"""Soak test: a `geartrain server` on its default durable queue (SQLite) under mixed
load, with its workers and itself killed at random; then a check that nothing
acknowledged was lost.

Load: Python (geartrain's client) and PHP (php-gearman) clients submit background
jobs, foreground jobs and status requests; Python workers and a PHP worker run
them.  The Python submitters pause while more than MAX_BACKLOG background jobs are
queued, as the clients of a system whose workers keep up would never see more.
Faults: a worker is SIGKILLed and restarted now and then, and so is the server
(SIGKILL, then a restart on the same queue file).  With ``--queue redis``
the queue is a Redis reached through a TCP proxy (tests/store/proxy.py), and a
third fault cuts the proxy for a few seconds: a store outage.  The last part of
the run (``--steady``) has no faults, so the server's RSS and open fds can be
seen to stay flat.

The checker, once the queue has drained:
- every background job whose submission was acknowledged ran to completion at
  least once (workers log each start and end to files that survive a SIGKILL);
- a job that ran more than once was running at a fault (the fault suite's
  accounting, tests/faults/ledger.py): its worker died during the run, or a
  server kill or store outage fell within the run (or within ``--grace``
  seconds after it, or after the end of a store outage it ended in, while the
  completion was on its way to the queue);
- every foreground result was right (failures while the server was down are
  counted, not errors);
- the server's memory (its anonymous RSS: the mapped pages of the SQLite queue
  log are page cache, up to a log file's size) and open fds in the steady part
  grow by no more than a margin.

Everything listens on loopback.  Usage:

    python scripts/soak.py --minutes 2            # as CI runs it
    python scripts/soak.py --minutes 1 --queue redis --redis 127.0.0.1:6379
    python scripts/soak.py --minutes 240 --report soak.json

Exit status 0 when every check passes, 1 otherwise; the report (JSON) has the
counts, the kill times and the RSS/fd samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from geartrain import Client, Worker, WorkerJob

TESTS = Path(__file__).resolve().parent.parent / "tests"
PHP_PEERS = TESTS / "php_peers"
sys.path.insert(0, str(TESTS))
from faults.ledger import OK, Ledger  # noqa: E402  (the fault suite's accounting)
from faults.load import held  # noqa: E402
from store.proxy import TcpProxy  # noqa: E402  (the tests' proxy: a link to cut and restore)

HOST = "127.0.0.1"
BG, FG = "soak_bg", "reverse"
MAX_BACKLOG = 5000
"""Background submitters wait while more soak_bg jobs than this are queued or running:
a queue that grows for the whole run would outlast the drain at the end."""


# -- the worker processes ----------------------------------------------------


def worker_main(port: int, log_path: str) -> None:
    """A worker process: runs soak_bg (logging start and end) and reverse."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    worker = Worker([f"{HOST}:{port}"], max_backoff=0.5, concurrency=2)

    @worker.register(BG)
    async def background(job: WorkerJob) -> bytes:
        # One write per line: whole lines even when the process is killed.
        os.write(fd, b"S %s %.6f\n" % (job.data, time.time()))
        await asyncio.sleep(random.random() * 0.01)
        os.write(fd, b"E %s %.6f\n" % (job.data, time.time()))
        return b""

    @worker.register(FG)
    async def reverse(job: WorkerJob) -> bytes:
        return job.data[::-1]

    asyncio.run(worker.run())


# -- the orchestrator ---------------------------------------------------------


@dataclass
class Counts:
    bg_acked: int = 0
    bg_refused: int = 0
    fg_ok: int = 0
    fg_failed: int = 0
    fg_wrong: int = 0
    status_ok: int = 0
    status_failed: int = 0
    php_bg_acked: int = 0
    php_fg_ok: int = 0
    php_failed: int = 0
    worker_kills: int = 0
    server_kills: int = 0
    store_outages: int = 0


@dataclass
class Soak:
    args: argparse.Namespace
    dir: Path
    port: int = 0
    server: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    ledger: Ledger = field(default_factory=Ledger)
    handles: list[bytes] = field(default_factory=list)
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)
    steady_at: float = 0.0
    stopping: bool = False
    next_id: int = 0
    worker_logs: int = 0
    backlog: int = 0
    proxy: TcpProxy | None = None
    prefix: str = ""

    # -- processes --

    def start_server(self) -> None:
        argv = [sys.executable, "-m", "geartrain", "server", "-L", HOST, "-p", str(self.port)]
        if self.proxy is None:
            argv += [f"--libsqlite3-db={self.dir / 'queue.sqlite3'}"]
        else:
            argv += ["-q", "redis", f"--redis-server={HOST}", f"--redis-port={self.proxy.port}"]
            argv += [f"--redis-prefix={self.prefix}"]
        argv += ["-l", str(self.dir / "server.log"), "--verbose=WARNING"]
        self.server = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the server did not start; see " + str(self.dir / "server.log"))

    def start_worker(self, slot: int) -> subprocess.Popen[bytes]:
        self.worker_logs += 1
        if slot < self.args.workers:
            log = self.dir / f"worker-{self.worker_logs}.log"
            argv = [sys.executable, __file__, "--worker", str(self.port), str(log)]
        else:
            argv = ["php", str(PHP_PEERS / "worker.php"), HOST, str(self.port), "100000000"]
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # -- load --

    def new_id(self, kind: str) -> str:
        self.next_id += 1
        return f"{kind}-{self.next_id}"

    async def python_background(self) -> None:
        async with Client([f"{HOST}:{self.port}"], max_backoff=0.5, io_timeout=10) as client:
            while not self.stopping:
                if self.backlog > MAX_BACKLOG:
                    await asyncio.sleep(0.1)
                    continue
                job_id = self.new_id("py")
                start = time.time()
                try:
                    handle = await client.submit_background(BG, job_id, unique=job_id)
                except Exception:
                    self.counts.bg_refused += 1
                    await asyncio.sleep(0.1)
                    continue
                self.ledger.submitted(self.port, job_id, start, OK)
                self.handles.append(handle)
                self.counts.bg_acked += 1

    async def python_foreground(self) -> None:
        async with Client([f"{HOST}:{self.port}"], max_backoff=0.5, io_timeout=10) as client:
            while not self.stopping:
                data = os.urandom(random.randrange(1, 2048))
                try:
                    result = await client.submit(FG, data, timeout=15)
                except Exception:
                    self.counts.fg_failed += 1
                    await asyncio.sleep(0.1)
                    continue
                if result == data[::-1]:
                    self.counts.fg_ok += 1
                else:
                    self.counts.fg_wrong += 1

    async def python_status(self) -> None:
        async with Client([f"{HOST}:{self.port}"], max_backoff=0.5, io_timeout=10) as client:
            while not self.stopping:
                await asyncio.sleep(0.01)
                if not self.handles:
                    continue
                handle = random.choice(self.handles[-100:])
                try:
                    await client.get_status(handle)
                    self.counts.status_ok += 1
                except Exception:
                    self.counts.status_failed += 1
                    await asyncio.sleep(0.1)

    async def php_client(self) -> None:
        script = str(PHP_PEERS / "client.php")
        while not self.stopping:
            background = random.random() < 0.5
            job_id = self.new_id("php")
            payload = job_id.encode() if background else os.urandom(64).hex().encode()
            argv = ["php", script, HOST, str(self.port), BG if background else FG]
            start = time.time()
            proc = await asyncio.create_subprocess_exec(
                *argv + (["background"] if background else []),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            out, _ = await proc.communicate(payload)
            if proc.returncode != 0:
                self.counts.php_failed += 1
                await asyncio.sleep(0.1)
            elif background:
                self.ledger.submitted(self.port, job_id, start, OK)
                self.handles.append(out)
                self.counts.php_bg_acked += 1
            elif out == payload[::-1]:
                self.counts.php_fg_ok += 1
            else:
                self.counts.fg_wrong += 1

    # -- faults and samples --

    async def chaos(self) -> None:
        while time.time() < self.steady_at:
            await asyncio.sleep(random.expovariate(1 / self.args.fault_every))
            if time.time() >= self.steady_at:
                return
            if self.proxy is not None and random.random() < self.args.store_share:
                await self.proxy.stop()
                self.counts.store_outages += 1
                outage = self.ledger.fault("cut", (self.port,), holds_acks=True)
                await asyncio.sleep(random.uniform(1.0, 4.0))
                await self.proxy.start()
                outage.ended = time.time()
            elif random.random() < self.args.server_share:
                assert self.server is not None
                self.server.kill()
                self.server.wait()
                kill = self.ledger.fault("kill", (self.port,))
                self.counts.server_kills += 1
                await asyncio.sleep(random.uniform(0.1, 1.0))
                kill.ended = time.time()
                await asyncio.to_thread(self.start_server)
            else:
                slot = random.randrange(len(self.workers))
                self.workers[slot].kill()
                self.workers[slot].wait()
                self.counts.worker_kills += 1
                await asyncio.sleep(random.uniform(0.0, 0.5))
                self.workers[slot] = self.start_worker(slot)

    async def sample(self) -> None:
        while not self.stopping:
            assert self.server is not None
            pid = self.server.pid
            with contextlib.suppress(OSError, ValueError):
                status = Path(f"/proc/{pid}/status").read_text()
                # Anonymous memory only: the queue log's mapped pages count in VmRSS
                # as they fill, and are the kernel's page cache, not the server's heap.
                rss = int(status.split("RssAnon:")[1].split()[0])
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                self.samples.append((time.time(), pid, rss, fds))
            await asyncio.sleep(1)

    async def watch_backlog(self) -> None:
        while not self.stopping:
            queued = await held((self.port,), BG)
            if queued is not None:
                self.backlog = queued
            await asyncio.sleep(0.5)

    async def drain(self, timeout: float) -> bool:
        """Wait until no soak_bg job is queued or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await held((self.port,), BG) == 0:
                return True
            await asyncio.sleep(0.5)
        return False

    async def run(self) -> dict[str, object]:
        args = self.args
        started = time.time()
        self.steady_at = started + args.minutes * 60 * (1 - args.steady)
        if args.queue == "redis":
            host, _, port = args.redis.rpartition(":")
            self.proxy = await TcpProxy(host, int(port)).start()
            self.prefix = f"geartrain-soak-{os.getpid()}:"
        await asyncio.to_thread(self.start_server)
        self.workers = [self.start_worker(i) for i in range(args.workers + args.php_workers)]
        load = [self.python_background() for _ in range(args.clients)]
        load += [self.python_foreground() for _ in range(args.clients)]
        load += [self.python_status(), self.watch_backlog()]
        load += [self.php_client() for _ in range(args.php_clients)]
        tasks = [asyncio.ensure_future(c) for c in [*load, self.sample()]]
        chaos = asyncio.ensure_future(self.chaos())
        await asyncio.sleep(args.minutes * 60)
        await chaos
        self.stopping = True
        await asyncio.gather(*tasks, return_exceptions=True)
        drained = await self.drain(timeout=120)
        return self.check(started, drained)

    async def clean_store(self) -> None:
        if self.proxy is None:
            return
        import redis.asyncio as aioredis

        await self.proxy.stop()
        host, _, port = self.args.redis.rpartition(":")
        client = aioredis.Redis(host=host, port=int(port))
        try:
            keys = [k async for k in client.scan_iter(match=self.prefix + "*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    def stop(self) -> None:
        for proc in [*self.workers, self.server]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers, self.server]:
            if proc is not None:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    # -- the checker --

    def check(self, started: float, drained: bool) -> dict[str, object]:
        ledger = self.ledger
        for log in sorted(self.dir.glob("worker-*.log")):
            ledger.read_worker_log(log, self.port)
        lost = ledger.lost()
        duplicates = ledger.twice()
        unexplained = [t["job"] for t in duplicates if not t["coincided"]]
        steady = [s for s in self.samples if s[0] >= self.steady_at + 5]
        growth = resource_growth(steady)
        failures = []
        if not drained:
            failures.append("the queue did not drain within 120 s")
        if lost:
            failures.append(f"{len(lost)} acknowledged background job(s) never ran: {lost[:10]}")
        if unexplained:
            failures.append(f"{len(unexplained)} job(s) ran twice at no fault: {unexplained[:10]}")
        if self.counts.fg_wrong:
            failures.append(f"{self.counts.fg_wrong} foreground result(s) were wrong")
        if growth["rss_kb"] > self.args.rss_margin_kb:
            failures.append(f"RSS grew by {growth['rss_kb']} KiB in the steady part")
        if growth["fds"] > self.args.fd_margin:
            failures.append(f"open fds grew by {growth['fds']} in the steady part")
        return {
            "ok": not failures,
            "failures": failures,
            "seconds": round(time.time() - started, 1),
            "counts": asdict(self.counts),
            "acknowledged": len(ledger.acked),
            "ran": len(ledger.completed() & ledger.acked.keys()),
            "duplicates": len(duplicates),
            "duplicates_at_a_kill": len(duplicates) - len(unexplained),
            "steady_growth": growth,
            "server_kill_times": [f.began for f in ledger.faults if f.kind == "kill"],
            "samples": [
                {"t": round(t - started, 1), "pid": pid, "rss_kb": rss, "fds": fds}
                for t, pid, rss, fds in self.samples
            ],
        }


def resource_growth(samples: list[tuple[float, int, int, int]]) -> dict[str, int]:
    """RSS and fd growth from the first to the last quarter of the steady samples
    (peak against peak, so one busy second does not count as growth)."""
    if len(samples) < 8:
        return {"rss_kb": 0, "fds": 0, "samples": len(samples)}
    quarter = len(samples) // 4
    first, last = samples[:quarter], samples[-quarter:]
    return {
        "rss_kb": max(s[2] for s in last) - max(s[2] for s in first),
        "fds": max(s[3] for s in last) - max(s[3] for s in first),
        "samples": len(samples),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=10, help="length of the run (10)")
    p.add_argument("--steady", type=float, default=0.3, help="final share with no faults (0.3)")
    p.add_argument("--fault-every", type=float, default=4, help="mean seconds between faults")
    p.add_argument("--server-share", type=float, default=0.3, help="share of faults on the server")
    p.add_argument("--queue", choices=["sqlite", "redis"], default="sqlite", help="durable queue")
    p.add_argument("--redis", default="127.0.0.1:6379", help="Redis for --queue redis")
    p.add_argument("--store-share", type=float, default=0.3, help="share of store outages (redis)")
    p.add_argument("--workers", type=int, default=3, help="Python worker processes (3)")
    p.add_argument("--php-workers", type=int, default=1, help="PHP worker processes (1)")
    p.add_argument("--clients", type=int, default=2, help="Python bg and fg clients, each (2)")
    p.add_argument("--php-clients", type=int, default=2, help="PHP client loops (2)")
    p.add_argument(
        "--grace", type=float, default=2.0, help="seconds a completion may take to be stored"
    )
    p.add_argument("--rss-margin-kb", type=int, default=16384, help="allowed steady RSS growth")
    p.add_argument("--fd-margin", type=int, default=8, help="allowed steady fd growth")
    p.add_argument("--seed", type=int, default=None, help="random seed (printed)")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, queue)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        worker_main(int(argv[1]), argv[2])
        return 0
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the clients' reconnect notices are expected
    args.seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(args.seed)
    work = Path(tempfile.mkdtemp(prefix="geartrain-soak-"))
    soak = Soak(args, work, port=free_port(), ledger=Ledger(args.grace))

    async def run() -> dict[str, object]:
        try:
            return await soak.run()
        finally:
            await asyncio.to_thread(soak.stop)
            await soak.clean_store()

    report = asyncio.run(run())
    report["seed"] = args.seed
    if args.report:
        args.report.write_text(json.dumps(report, indent=1) + "\n")
    summary = {k: v for k, v in report.items() if k not in ("samples", "server_kill_times")}
    print(json.dumps(summary, indent=1))
    if args.keep or not report["ok"]:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
