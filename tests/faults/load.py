"""The load of a fault run: background jobs submitted to every server by geartrain's
client and by PHP (php-gearman) clients, run by geartrain workers on every
server; each submission and each run goes into the ledger.

A job's workload is its id (then padding, for runs that need the disk to fill).
Submitters pause while the servers hold more than :data:`MAX_BACKLOG` jobs, so
the queue drains soon after the load stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path

from geartrain import Admin, Client, Worker, WorkerJob
from geartrain.errors import ServerError

from .ledger import FAILED, OK, QUEUE_ERROR, Ledger

HOST = "127.0.0.1"
FUNCTION = "work"
SUBMIT_PHP = Path(__file__).resolve().parents[1] / "php_peers" / "submit.php"


JOB_SECONDS = (0.0, 0.01)
"""How long a job runs, at random in this range ..."""
SLOW_JOB_SECONDS = (0.3, 0.6)
"""... and on a server whose workers are slow (they hold claimed jobs in a cluster)."""
WORKERS = 3
"""Worker connections per server."""
MAX_BACKLOG = 3000


class Load:
    """Clients and workers on the servers at ``ports``.

    Args:
        rate: background submissions per second per client (at most).
        pad: bytes of padding after each job's id.
        slow: ports whose workers are slow.
    """

    def __init__(
        self,
        ledger: Ledger,
        ports: tuple[int, ...],
        *,
        rate: float = 50.0,
        php: bool = True,
        pad: int = 0,
        slow: tuple[int, ...] = (),
    ) -> None:
        self.ledger = ledger
        self.ports = ports
        self.rate = rate
        self.php = php
        self.pad = pad
        self.slow = slow
        self.backlog = 0
        self.stopping = False
        self.tasks: list[asyncio.Task[None]] = []
        self.workers: list[Worker] = []
        self.working = asyncio.Event()
        """Cleared: the workers start no job (a consumer outage: the queue grows)."""
        self.working.set()

    async def start(self) -> None:
        for port in self.ports:
            for _ in range(WORKERS):
                worker = self._worker(port)
                await worker.start()
                self.workers.append(worker)
        load = [self._python(port) for port in self.ports]
        if self.php:
            load += [self._php(port) for port in self.ports]
        self.tasks = [asyncio.ensure_future(c) for c in [*load, self._watch_backlog()]]

    async def stop(self, drain_timeout: float) -> str:
        """Stop submitting; wait until every acknowledged job ran and the servers hold
        none, then stop the workers.  Returns what was left after ``drain_timeout``
        ("" if nothing)."""
        self.stopping = True
        await asyncio.gather(*self.tasks, return_exceptions=True)
        deadline = time.monotonic() + drain_timeout
        left = "not waited for"
        while time.monotonic() < deadline:
            unrun, held = len(self.ledger.lost()), await self.held()
            left = f"{unrun} acknowledged job(s) not run, servers holding {held} job(s)"
            if held is None:
                left = f"{unrun} acknowledged job(s) not run, a server not answering `status`"
            if not unrun and held == 0:
                left = ""
                break
            await asyncio.sleep(0.5)
        for worker in self.workers:
            worker.stop(graceful=True)
        await asyncio.gather(*(w.wait() for w in self.workers), return_exceptions=True)
        return left

    # -- workers --

    def _worker(self, port: int) -> Worker:
        worker = Worker([f"{HOST}:{port}"], max_backoff=0.3, io_timeout=30)
        low, high = SLOW_JOB_SECONDS if port in self.slow else JOB_SECONDS

        @worker.register(FUNCTION)
        async def work(job: WorkerJob) -> bytes:
            await self.working.wait()
            run = self.ledger.started(job.data.split(b" ", 1)[0].decode(), port)
            await asyncio.sleep(random.uniform(low, high))
            run.end = time.time()
            return b""

        return worker

    # -- clients --

    def _workload(self, job: str) -> bytes:
        return job.encode() + (b" " + b"x" * self.pad if self.pad else b"")

    async def _python(self, port: int) -> None:
        n = 0
        async with Client([f"{HOST}:{port}"], max_backoff=0.5, io_timeout=10) as client:
            while not self.stopping:
                if self.backlog > MAX_BACKLOG:
                    await asyncio.sleep(0.1)
                    continue
                n += 1
                job = f"py{port}-{n}"
                start = time.time()
                try:
                    await client.submit_background(FUNCTION, self._workload(job), unique=job)
                    outcome = OK
                except ServerError as error:
                    outcome = QUEUE_ERROR if error.code == "QUEUE_ERROR" else FAILED
                except (OSError, TimeoutError, ConnectionError):
                    outcome = FAILED
                self.ledger.submitted(port, job, start, outcome)
                await asyncio.sleep(max(0.0, start + 1 / self.rate - time.time()))
                if outcome != OK:
                    await asyncio.sleep(0.1)

    async def _php(self, port: int) -> None:
        """A php-gearman client process per round, its answers read as they come."""
        rounds = 0
        while not self.stopping:
            rounds += 1
            argv = ["php", str(SUBMIT_PHP), str(port), f"php{port}.{rounds}", "100000"]
            argv += [str(int(1000 / self.rate)), str(self.pad)]
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
            )
            assert proc.stdout is not None
            try:
                while not self.stopping and (line := await proc.stdout.readline()):
                    self._php_answer(port, line.decode().split(maxsplit=5))
            finally:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    def _php_answer(self, port: int, words: list[str]) -> None:
        kind, job, start, end = words[0], words[1], float(words[2]), float(words[3])
        if kind == "ok":
            outcome = OK
        else:
            # libgearman names the code of the ERROR packet: GEARMAN_QUEUE_ERROR.
            outcome = QUEUE_ERROR if "QUEUE_ERROR" in " ".join(words[4:]) else FAILED
        self.ledger.submitted(port, job, start, outcome, end)

    async def held(self) -> int | None:
        return await held(self.ports, FUNCTION)

    async def _watch_backlog(self) -> None:
        while not self.stopping:
            count = await self.held()
            if count is not None:
                self.backlog = count
            await asyncio.sleep(0.5)


async def held(ports: tuple[int, ...], function: str) -> int | None:
    """Jobs of ``function`` queued or running, by the admin ``status`` of the servers
    at ``ports`` (a cluster's are counted by each member: the largest count); None
    if a server did not answer."""
    counts = []
    for port in ports:
        try:
            async with Admin(f"{HOST}:{port}", connect_timeout=5, io_timeout=5) as admin:
                rows = await admin.status()
        except (OSError, TimeoutError, ConnectionError):
            return None
        counts.append(sum(r.total for r in rows if r.function == function))
    return max(counts)
