"""The rescue of a dead member's jobs follows the function's retry policy, then
``--job-retries``, as a lost worker's job does on a single server.

The decision on a manual clock (no store), a member's sweep on a manual clock
over the real store, and members killed with SIGKILL under real workers (each
on PostgreSQL and on Redis)."""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from failing_peer import failed_lines
from geartrain import Client, Retry, Worker, WorkerJob
from geartrain.cluster import Orphan, Submission
from geartrain.cluster.node import ClusterNode
from geartrain.cluster.rescue import REASON, Rescued, plan
from geartrain.cluster.states import State
from geartrain.server.retries import MAX_OUTCOMES
from geartrain.server.settings import parse_settings
from geartrain.store.records import Attempt, decode_outcomes, encode_outcomes
from gt_helpers import registered, wait_for
from server.harness import Clock, make
from serverproc import ServerProc

from .conftest import StartMember
from .stores import SharedStore

NOW = 1_000_000.0
BACKOFF = 6.0
"""Seconds a lost worker's job waits before its next attempt, under LOST."""

SETTINGS = f"""
[functions."cl_lost*"]
attempts = 2
retry_on = ["worker_lost"]
backoff_base = {BACKOFF}
jitter = 0.0

[functions."cl_flaky*"]
attempts = 3
retry_on = ["fail"]
backoff_base = 60.0
jitter = 0.0

[functions."cl_gone*"]
keep_failed = false
"""
POLICIES = parse_settings(tomllib.loads(SETTINGS)).policies
"""The members' policies, for the tests without servers."""


def orphan(function: bytes, retries: int = 0, failures: int = 0, outcomes: str = "[]") -> Orphan:
    return Orphan(7, 3, 42, function, retries, failures, outcomes)


def lost_at(now: float) -> Attempt:
    return Attempt("worker_lost", "server 42 stopped renewing its lease", "-", now)


# -- the decision -------------------------------------------------------------------


def test_a_policy_that_retries_lost_workers_retries_after_its_backoff() -> None:
    fate = plan([orphan(b"cl_lost")], POLICIES, job_retries=0, now=NOW)
    [retry] = fate.retries
    assert (retry.id, retry.claim, retry.retries, retry.failures) == (7, 3, 1, 1)
    assert retry.delay == BACKOFF  # --job-retries 0 does not apply: the policy retries
    assert decode_outcomes(retry.outcomes) == (lost_at(NOW),)
    assert not fate.failures and not fate.deleted


def test_its_attempts_spent_the_job_fails_for_good() -> None:
    earlier = encode_outcomes([Attempt("fail", "", "w", NOW - 9)])
    fate = plan([orphan(b"cl_lost", 0, 1, earlier)], POLICIES, job_retries=-1, now=NOW)
    [failure] = fate.failures
    assert (failure.id, failure.claim, failure.failures, failure.reason) == (7, 3, 2, REASON)
    assert [o.kind for o in decode_outcomes(failure.outcomes)] == ["fail", "worker_lost"]
    assert not fate.retries and fate.past_limit == 0


def test_a_policy_that_does_not_retry_lost_workers_follows_job_retries() -> None:
    # Queued again at once while --job-retries allows, not after the fail backoff.
    fate = plan([orphan(b"cl_flaky", retries=0)], POLICIES, job_retries=2, now=NOW)
    assert [(r.retries, r.delay) for r in fate.retries] == [(1, 0.0)]
    fate = plan([orphan(b"cl_flaky", retries=1)], POLICIES, job_retries=2, now=NOW)
    assert [(f.failures, f.reason) for f in fate.failures] == [(1, REASON)]
    assert fate.past_limit == 1 and not fate.retries
    unlimited = plan([orphan(b"cl_flaky", retries=99)], POLICIES, job_retries=-1, now=NOW)
    assert len(unlimited.retries) == 1


def test_a_job_its_policy_does_not_keep_is_deleted() -> None:
    fate = plan([orphan(b"cl_gone")], POLICIES, job_retries=1, now=NOW)
    assert fate.deleted == [(7, 3)] and not fate.failures and not fate.retries


def test_outcomes_are_bounded_as_on_a_single_server() -> None:
    many = encode_outcomes([Attempt("fail", str(i), "w", float(i)) for i in range(MAX_OUTCOMES)])
    fate = plan([orphan(b"plain", 0, MAX_OUTCOMES, many)], POLICIES, job_retries=-1, now=NOW)
    outcomes = decode_outcomes(fate.retries[0].outcomes)
    assert len(outcomes) == MAX_OUTCOMES
    assert outcomes[0].message == "1" and outcomes[-1] == lost_at(NOW)


# -- a member's sweep, on a manual clock, over the real store -------------------------


@pytest.fixture
async def member(shared_store: SharedStore) -> AsyncIterator[tuple[ClusterNode, Clock]]:
    """A member whose core's clock and timers are a manual clock (no heartbeat runs
    unless the test advances it); its lease is granted by the store."""
    clock = Clock(now=NOW)
    core = make(clock, job_retries=2)
    core.policies = POLICIES
    node = ClusterNode(shared_store.backend(), lease=30, clock=lambda: clock.now)
    await node.start(core)
    yield node, clock
    await node.close()


@pytest.mark.backend
async def test_a_members_sweep_applies_each_functions_policy(
    member: tuple[ClusterNode, Clock], shared_store: SharedStore
) -> None:
    node, clock = member
    store = shared_store.backend()
    await store.open(lambda: None)
    try:
        jobs = [Submission(name, b"", b"x", 1, 0, b"") for name in (b"cl_lost", b"cl_flaky")]
        [(lost, _), (flaky, _)] = await store.submit(jobs, b"H")
        dying = await store.register("dying", 0.5)
        assert len(await store.claim(dying, [(b"cl_lost", 1), (b"cl_flaky", 1)])) == 2
        swept: list[Rescued | None] = []

        async def expired() -> bool:
            swept.append(await node.sweep())
            return swept[-1] is not None and swept[-1].dead > 0

        await wait_for(expired, timeout=10, interval=0.1)  # by the store's clock
        assert swept[-1] == Rescued(dead=1, queued=2, failed=0)
        assert [m[1] for m in await store.members()] == [node.name]  # the dead one left
        # cl_flaky's policy does not retry a lost worker: queued again at once
        # (--job-retries 2 allows it); cl_lost waits for its policy's backoff.
        server = await store.register("other", 30)
        [again] = await store.claim(server, [(b"cl_flaky", 1), (b"cl_lost", 1)])
        assert (again.id, again.retries, again.failures) == (flaky, 1, 1)
        lost_now = Attempt("worker_lost", f"server {dying} stopped renewing its lease", "-", NOW)
        assert decode_outcomes(again.outcomes) == (lost_now,)  # at the core's clock
        assert await store.status(lost) == (b"H", State.WAITING, 0, 0)
    finally:
        await store.close()


# -- members killed under real workers -----------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> str:
    path = tmp_path / "settings.toml"
    path.write_text(SETTINGS)
    return str(path)


@dataclass
class Takeover:
    """Three members; a job submitted to c started on a's worker, and a was killed
    while a worker of b waited for the job."""

    members: tuple[ServerProc, ServerProc, ServerProc]
    handle: bytes
    killed: float
    """When a was killed (monotonic)."""
    starts: list[tuple[int, float]]
    """(member's port, monotonic time) of each start of the job."""


@asynccontextmanager
async def killed_under_a_job(
    start_member: StartMember, function: str, *flags: str, retry: Retry | None = None
) -> AsyncIterator[Takeover]:
    a, b, c = (start_member(*flags) for _ in range(3))
    starts: list[tuple[int, float]] = []
    workers = [await run_on(a, function, starts)]
    try:
        async with Client([c.address]) as client:
            handle = await client.submit_background(function, b"x", retry=retry)
        await wait_for(lambda: [p for p, _t in starts] == [a.port], timeout=10)
        workers.append(await run_on(b, function, starts))
        killed = time.monotonic()
        a.kill()
        yield Takeover((a, b, c), handle, killed, starts)
    finally:
        for w in workers:
            w.stop(graceful=False)
            await w.wait()


async def run_on(server: ServerProc, function: str, starts: list[tuple[int, float]]) -> Worker:
    """A worker on ``server`` that starts the job and never finishes it."""
    worker = Worker([server.address], max_backoff=0.3)

    @worker.register(function)
    async def hang(job: WorkerJob) -> bytes:
        starts.append((server.port, time.monotonic()))
        await asyncio.sleep(120)
        return b""

    await worker.start()
    await wait_for(lambda: registered(server.address, function), timeout=20)
    return worker


@pytest.mark.backend
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_killed_members_job_is_retried_after_its_backoff_then_fails_for_good(
    start_member: StartMember, shared_store: SharedStore, settings: str
) -> None:
    async with killed_under_a_job(start_member, "cl_lost", "--settings", settings) as run:
        _a, b, c = run.members
        await wait_for(lambda: len(run.starts) == 2, timeout=30)
        assert run.starts[1][0] == b.port
        # The takeover, then the policy's backoff.
        assert run.starts[1][1] - run.killed >= BACKOFF
        # Its second attempt dies with b: the policy's attempts are spent.
        b.kill()
        await wait_for(lambda: [f[0] for f in failed_lines(c.port)] == [run.handle], timeout=20)
        [fields] = failed_lines(c.port)
        assert fields[3] == b"2" and fields[5] == REASON.encode()
        store = shared_store.backend()
        await store.open(lambda: None)
        try:
            [record] = await store.failed_jobs()
        finally:
            await store.close()
        assert [o.kind for o in record.outcomes] == ["worker_lost", "worker_lost"]
        assert len(run.starts) == 2


@pytest.mark.backend
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_killed_members_job_keeps_its_submissions_policy(
    start_member: StartMember,
) -> None:
    """No settings file: the policy comes from the submission alone, stored with
    the job, and the member that takes over applies it (without it a lost
    worker's job would be queued again at once, without end)."""
    retry = Retry(attempts=2, on=["worker_lost"], backoff=BACKOFF, jitter=0)
    async with killed_under_a_job(start_member, "cl_own", retry=retry) as run:
        _a, b, c = run.members
        await wait_for(lambda: len(run.starts) == 2, timeout=30)
        assert run.starts[1][0] == b.port
        assert run.starts[1][1] - run.killed >= BACKOFF  # the submission's backoff
        b.kill()  # its second attempt: the submission's attempts are spent
        await wait_for(lambda: [f[0] for f in failed_lines(c.port)] == [run.handle], timeout=20)
        [fields] = failed_lines(c.port)
        assert fields[3] == b"2" and fields[5] == REASON.encode()
        assert len(run.starts) == 2


@pytest.mark.backend
@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_policy_that_does_not_retry_lost_workers_follows_job_retries_cluster_wide(
    start_member: StartMember, settings: str
) -> None:
    # -j 2: two attempts in all.  cl_flaky's policy retries WORK_FAIL only, after 60 s.
    flags = ("--settings", settings, "-j", "2")
    async with killed_under_a_job(start_member, "cl_flaky", *flags) as run:
        _a, b, c = run.members
        await wait_for(lambda: len(run.starts) == 2, timeout=30)
        assert run.starts[1][0] == b.port
        assert run.starts[1][1] - run.killed < 30  # at once, not after 60 s
        b.kill()
        await wait_for(lambda: "1 past --job-retries moved to the failed set" in c.log(), 20)
        [fields] = failed_lines(c.port)
        assert fields[0] == run.handle and fields[3] == b"2" and fields[5] == REASON.encode()
        assert len(run.starts) == 2
