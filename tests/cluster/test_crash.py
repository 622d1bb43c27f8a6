"""kill -9 of cluster members mid-drain: no acknowledged job is lost.

Three servers on one database, a PHP client submitting to each, Python
workers on each.  One server after another is killed with SIGKILL and
started again (a new identity); its running jobs are taken over by the others
once its lease expires.  Every job a client was told exists runs, and every
job that ran twice was in flight on a killed server at the kill.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from geartrain import Worker, WorkerJob
from gt_helpers import registered, wait_for
from serverproc import ServerProc

from .conftest import LEASE, StartMember

PHP = shutil.which("php")
SUBMIT = Path(__file__).parent / "submit.php"
JOBS_PER_CLIENT = 300
KILLS = 3
IN_FLIGHT_MARGIN = 1.0
"""Seconds before a kill within which a finished job may not have been
acknowledged to the database yet: it counts as in flight."""

pytestmark = [pytest.mark.backend, pytest.mark.slow, pytest.mark.interop, pytest.mark.timeout(240)]


@dataclass
class Run:
    data: bytes
    port: int
    start: float
    end: float = field(default=float("inf"))


def worker_for(server: ServerProc, runs: list[Run]) -> Worker:
    worker = Worker([server.address], concurrency=3, max_backoff=0.3, connect_timeout=2.0)

    @worker.register("work")
    async def work(job: WorkerJob) -> bytes:
        run = Run(job.data, server.port, time.monotonic())
        runs.append(run)
        await asyncio.sleep(0.02)
        run.end = time.monotonic()
        return b"ok"

    return worker


async def test_kill_members_mid_drain(start_member: StartMember) -> None:
    servers = [start_member() for _ in range(3)]
    runs: list[Run] = []
    workers = [worker_for(s, runs) for s in servers]
    for w in workers:
        await w.start()
    for s in servers:
        await wait_for(lambda s=s: registered(s.address, "work", 1), timeout=20)
    clients = [
        subprocess.Popen(
            [str(PHP), str(SUBMIT), str(s.port), f"c{i}", str(JOBS_PER_CLIENT)],
            stdout=subprocess.PIPE,
        )
        for i, s in enumerate(servers)
    ]
    kills: list[tuple[int, float, list[Run]]] = []  # port, time, runs in flight then
    takeovers: list[float] = []
    try:
        for k in range(KILLS):
            await wait_for(lambda k=k: len(runs) > 80 * (k + 1), timeout=60)
            victim = servers[k % 3]
            at = time.monotonic()
            victim.kill()
            in_flight = [r for r in runs if r.port == victim.port and r.end > at - IN_FLIGHT_MARGIN]
            kills.append((victim.port, at, in_flight))
            victim.start()  # the same port, a new identity in the cluster
            # Takeover: every job that was running there has started again elsewhere.
            unfinished = {r.data for r in in_flight if r.end == float("inf")}

            def retaken(unfinished: set[bytes] = unfinished, at: float = at) -> bool:
                again = {r.data for r in runs if r.start > at}
                return unfinished <= again

            await wait_for(retaken, timeout=15, interval=0.05)
            if unfinished:
                takeovers.append(time.monotonic() - at)
        outputs = [c.communicate(timeout=120)[0] for c in clients]
        acknowledged = {line for out in outputs for line in out.split(b"\n") if line}
        assert len(acknowledged) > JOBS_PER_CLIENT  # the clients did submit through the kills

        def drained() -> bool:
            done = {r.data for r in runs if r.end != float("inf")}
            return acknowledged <= done

        await wait_for(drained, timeout=60, interval=0.1)
    finally:
        for c in clients:
            c.kill()
        for w in workers:
            w.stop(graceful=False)
        for w in workers:
            await w.wait()
    starts: dict[bytes, list[Run]] = {}
    for r in runs:
        starts.setdefault(r.data, []).append(r)
    twice = {data: rs for data, rs in starts.items() if len(rs) > 1}
    in_flight_at_a_kill = {r.data for _port, _at, flight in kills for r in flight}
    assert set(twice) <= in_flight_at_a_kill, sorted(set(twice) - in_flight_at_a_kill)[:10]
    print(
        f"\n{len(acknowledged)} acknowledged, {len(starts)} run, {len(twice)} run twice;"
        f" takeover after kill -9: {', '.join(f'{t:.1f}' for t in takeovers)} s"
        f" (lease {LEASE} s)"
    )
    assert takeovers and max(takeovers) <= 15
