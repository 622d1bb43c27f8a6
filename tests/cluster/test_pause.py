"""A member whose process is paused past its lease (SIGSTOP, as a frozen VM or a
long stall would) gives up what it had claimed: when it runs again it starts
none of the jobs the other members took over meanwhile, although its workers'
requests were waiting for it ahead of its overdue timers.  And a member whose
store link is black-holed notices within its lease."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from geartrain import Client, Worker, WorkerJob
from geartrain.protocol import REQ, PacketType, pack
from gt_helpers import registered, wait_for
from serverproc import ServerProc
from store.proxy import TcpProxy

from .conftest import LEASE, StartMember
from .stores import SharedStore
from .test_crash import Run, own_id

pytestmark = [pytest.mark.backend, pytest.mark.slow, pytest.mark.timeout(120)]

JOBS = 30
SLOW = 1.5
"""Seconds a job runs on the paused member's workers (they finish during the pause)."""
PAUSE = 8.0


def slow_worker(server: ServerProc, runs: list[Run], seconds: float) -> Worker:
    worker = Worker([server.address], concurrency=1, max_backoff=0.3, connect_timeout=2.0)

    @worker.register("work")
    async def work(job: WorkerJob) -> bytes:
        run = Run(job.data, job.handle, server.port, time.monotonic())
        runs.append(run)
        await asyncio.sleep(seconds)
        run.end = time.monotonic()
        return b"ok"

    return worker


async def keep_busy(port: int) -> None:
    """A peer that keeps the member busy with pipelined ECHO_REQs, so that the
    pause finds its loop at work rather than asleep in epoll_wait (which a
    stop signal interrupts, letting the overdue timers run first)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = pack(REQ, PacketType.ECHO_REQ, (b"ping",))
    answer = len(request)  # ECHO_RES: the same size
    try:
        while True:
            writer.write(request * 100)
            await reader.readexactly(answer * 100)
    finally:
        writer.close()


async def test_a_member_paused_past_its_lease_starts_no_job_taken_over(
    start_member: StartMember, shared_store: SharedStore
) -> None:
    paused, other = start_member(), start_member()
    runs: list[Run] = []
    workers = [slow_worker(paused, runs, SLOW) for _ in range(3)]
    rescuers = [slow_worker(other, runs, 0.05) for _ in range(2)]
    pinger: asyncio.Task[None] | None = None
    try:
        for w in workers:
            await w.start()
        await wait_for(lambda: registered(paused.address, "work", 3), timeout=20)
        async with Client([other.address]) as client:
            handles = [await client.submit_background("work", b"j%d" % i) for i in range(JOBS)]
        paused_id = own_id(paused)

        async def holding_unstarted() -> bool:
            running = sum(r.port == paused.port and r.end == float("inf") for r in runs)
            return running == 3 and len(await shared_store.held_by(paused_id)) > 3

        await wait_for(holding_unstarted, timeout=20)
        pinger = asyncio.create_task(keep_busy(paused.port))
        await asyncio.sleep(0.5)
        stopped = time.monotonic()
        paused.signal(signal.SIGSTOP)
        running_at_stop = {r.handle for r in runs if r.port == paused.port}
        for w in rescuers:
            await w.start()
        await asyncio.sleep(PAUSE)
        paused.signal(signal.SIGCONT)
        resumed = time.monotonic()
        await wait_for(
            lambda: set(handles) <= {r.handle for r in runs if r.end != float("inf")}, timeout=60
        )
        await asyncio.sleep(1.0)  # anything the resumed member wrongly started shows by now
    finally:
        if pinger is not None:
            pinger.cancel()
        paused.signal(signal.SIGCONT)
        for w in workers + rescuers:
            w.stop(graceful=False)
        for w in workers + rescuers:
            await w.wait()
    starts: dict[bytes, list[Run]] = {}
    for r in runs:
        starts.setdefault(r.handle, []).append(r)
    twice = {h for h, rs in starts.items() if len(rs) > 1}
    assert twice <= running_at_stop, sorted(twice - running_at_stop)
    started_after = [r for r in runs if r.port == paused.port and r.start > stopped]
    taken_over = [r for r in started_after if len(starts[r.handle]) > 1]
    assert not taken_over, [(r.handle, round(r.start - resumed, 2)) for r in taken_over]


async def test_a_member_notices_a_black_holed_store_within_its_lease(
    start_member: StartMember, shared_store: SharedStore
) -> None:
    proxy = await TcpProxy(*shared_store.target).start()
    try:
        member = await asyncio.to_thread(start_member, via=proxy.port)
        cut = time.monotonic()
        proxy.blackhole()
        await wait_for(lambda: "Cluster heartbeat failed" in member.log(), timeout=LEASE)
        noticed = time.monotonic() - cut
        proxy.heal()
        print(f"\nblack hole noticed after {noticed:.1f} s (lease {LEASE} s, {shared_store.kind})")
    finally:
        await proxy.stop()
