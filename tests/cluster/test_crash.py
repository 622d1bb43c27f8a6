"""kill -9 of cluster members mid-drain: no acknowledged job is lost.

Three servers on one database (or Redis), a PHP client submitting to each, Python
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
from .stores import SharedStore
from .test_cluster import members

PHP = shutil.which("php")
SUBMIT = Path(__file__).parents[1] / "php_peers" / "submit.php"
JOBS_PER_CLIENT = 300
KILLS = 3
IN_FLIGHT_MARGIN = 1.0
"""Seconds before a kill within which a finished job may not have been
acknowledged to the database yet: it counts as in flight."""

pytestmark = [pytest.mark.backend, pytest.mark.slow, pytest.mark.interop, pytest.mark.timeout(240)]


@dataclass
class Run:
    data: bytes
    handle: bytes  # the same job on every server; a client's resubmission is another
    port: int
    start: float
    end: float = field(default=float("inf"))


def worker_for(server: ServerProc, runs: list[Run]) -> Worker:
    worker = Worker([server.address], concurrency=3, max_backoff=0.3, connect_timeout=2.0)

    @worker.register("work")
    async def work(job: WorkerJob) -> bytes:
        run = Run(job.data, job.handle, server.port, time.monotonic())
        runs.append(run)
        await asyncio.sleep(0.02)
        run.end = time.monotonic()
        return b"ok"

    return worker


async def none_held(store: SharedStore, server: int) -> bool:
    return not await store.held_by(server)


def own_id(server: ServerProc) -> int:
    return next(int(row[0]) for row in members(server.port) if row[5] == "*")


async def test_kill_members_mid_drain(start_member: StartMember, shared_store: SharedStore) -> None:
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
    claimed_by_killed: set[bytes] = set()
    takeovers: list[float] = []
    try:
        for k in range(KILLS):
            await wait_for(lambda k=k: len(runs) > 80 * (k + 1), timeout=60)
            victim = servers[k % 3]
            victim_id = own_id(victim)
            at = time.monotonic()
            victim.kill()
            held = await shared_store.held_by(victim_id)
            in_flight = [r for r in runs if r.port == victim.port and r.end > at - IN_FLIGHT_MARGIN]
            kills.append((victim.port, at, in_flight))
            victim.start()  # the same port, a new identity in the cluster
            claimed_by_killed |= held
            # Takeover: the others have queued again every job it had claimed.
            if held:
                await wait_for(
                    lambda v=victim_id: none_held(shared_store, v), timeout=15, interval=0.05
                )
                takeovers.append(time.monotonic() - at)
        outputs = [c.communicate(timeout=120)[0] for c in clients]
        lines = [line.split() for out in outputs for line in out.split(b"\n")]
        acknowledged = {words[1] for words in lines if words[:1] == [b"ok"]}
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
    # One job run twice: one handle.  (A client that loses its server mid-submission
    # may submit the same data again: another job, with another handle.)
    starts: dict[bytes, list[Run]] = {}
    for r in runs:
        starts.setdefault(r.handle, []).append(r)
    twice = {handle for handle, rs in starts.items() if len(rs) > 1}
    in_flight_at_a_kill = {r.handle for _port, _at, flight in kills for r in flight}
    in_flight_at_a_kill |= claimed_by_killed
    assert twice <= in_flight_at_a_kill, sorted(twice - in_flight_at_a_kill)[:10]
    print(
        f"\n{len(acknowledged)} acknowledged, {len(starts)} run, {len(twice)} run twice;"
        f" takeover after kill -9: {', '.join(f'{t:.1f}' for t in takeovers)} s"
        f" (lease {LEASE} s, {shared_store.kind})"
    )
    assert takeovers and max(takeovers) <= 15
