"""The shared store's operations, the same on PostgreSQL and Redis (what
geartrain.cluster.backend.ClusterBackend promises), driven without servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable

import asyncpg  # type: ignore[import-untyped]
import pytest

from geartrain.cluster import Claimed, Failure, Retry, Submission
from geartrain.cluster.backend import ClusterBackend
from geartrain.cluster.rescue import rescue
from geartrain.server.policies import Policies
from geartrain.store.records import KeptResult, decode_outcomes
from gt_helpers import wait_for

from .stores import PostgresShared, RedisShared, SharedStore

pytestmark = [pytest.mark.backend]

SHORT = 0.5
"""Seconds of a lease meant to expire during the test."""

HIGH, NORMAL, LOW = 0, 1, 2


@pytest.fixture
async def backend(shared_store: SharedStore) -> AsyncIterator[ClusterBackend]:
    b = shared_store.backend()
    await b.open(lambda: None)
    yield b
    await b.close()


def job(
    data: bytes, unique: bytes = b"", function: bytes = b"f", priority: int = NORMAL, when: int = 0
) -> Submission:
    return Submission(function, unique, data, priority, when, b"")


async def expired(backend: ClusterBackend, retry_limit: int = -1) -> tuple[int, int, int]:
    """Sweep (with the default policy and ``retry_limit`` as --job-retries) until a
    server with a SHORT lease has expired: the sweep's (dead servers, jobs queued
    again, jobs failed for good)."""
    swept: list[tuple[int, int, int]] = []

    async def sweep() -> bool:
        rescued = await rescue(backend, SHORT, Policies(), retry_limit, time.time())
        assert rescued is not None  # nobody else sweeps
        swept.append((rescued.dead, rescued.queued, rescued.failed))
        return swept[-1][0] > 0

    await wait_for(sweep, timeout=10, interval=0.1)
    return swept[-1]


async def test_submit_coalesces_by_unique_key_across_batches(backend: ClusterBackend) -> None:
    first = await backend.submit(
        [
            job(b"a", b"u1"),
            job(b"b", b"u1"),  # the same key in the same batch
            job(b"c"),  # no key: never coalesced
            job(b"c"),
            job(b"x", b"-"),  # "-": by the data
            job(b"x", b"-"),
            job(b"a", b"u1", function=b"g"),  # keys are per function
        ],
        b"H:one",
    )
    ids = [i for i, _prefix in first]
    assert ids[0] == ids[1] and ids[4] == ids[5]
    assert len({ids[0], ids[2], ids[3], ids[4], ids[6]}) == 5
    # Another server's submission of the key answers with the first handle.
    assert await backend.submit([job(b"z", b"u1")], b"H:two") == [first[0]]
    assert {(f, total) for f, total, _running in await backend.queues()} == {(b"f", 4), (b"g", 1)}


async def test_claims_take_priority_then_age_and_need_a_live_lease(
    backend: ClusterBackend,
) -> None:
    await backend.submit([job(b"l1", priority=LOW), job(b"n1"), job(b"h1", priority=HIGH)], b"H")
    await backend.submit([job(b"h2", priority=HIGH), job(b"n2"), job(b"l2", priority=LOW)], b"H")
    server = await backend.register("s", 30)
    got = await backend.claim(server, [(b"f", 3), (b"nobody", 5)])
    # Which jobs, not their order within one claim: the server queues them by priority.
    assert {c.data for c in got} == {b"h1", b"h2", b"n1"}
    assert all(c.claim == 1 and c.prefix == b"H" and c.retries == 0 for c in got)
    late = await backend.register("late", SHORT)
    await expired(backend)
    assert await backend.claim(late, [(b"f", 3)]) == []
    assert not await backend.renew(late, 30)
    assert await backend.renew(server, 30)
    for data in (b"n2", b"l1", b"l2"):  # within a priority, the oldest first
        assert [c.data for c in await backend.claim(server, [(b"f", 1)])] == [data]


async def test_acknowledgements_are_fenced_by_the_claim(backend: ClusterBackend) -> None:
    [(job_id, _)] = await backend.submit([job(b"a", b"u")], b"H")
    lost = await backend.register("lost", SHORT)
    [first] = await backend.claim(lost, [(b"f", 1)])
    assert await expired(backend) == (1, 1, 0)  # its running job queued again
    other = await backend.register("other", 30)
    [again] = await backend.claim(other, [(b"f", 1)])
    assert (again.id, again.claim, again.retries) == (job_id, 2, 1)
    assert await backend.ack([(job_id, first.claim)]) == set()  # the late one
    assert await backend.status(job_id) == (b"H", 2, 0, 0)
    assert await backend.ack([(job_id, again.claim)]) == {job_id}
    assert await backend.status(job_id) is None
    assert await backend.status_unique(b"u") is None
    assert await backend.queues() == []
    # The key is free again: a new job.
    [(new_id, _)] = await backend.submit([job(b"a", b"u")], b"H")
    assert new_id != job_id


async def test_server_deaths_count_as_retries(backend: ClusterBackend) -> None:
    await backend.submit([job(b"a"), job(b"b"), job(b"c")], b"H")
    dying = await backend.register("dying", SHORT)
    assert len(await backend.claim(dying, [(b"f", 2)])) == 2
    assert await expired(backend, retry_limit=1) == (1, 0, 2)  # one attempt in all: dropped
    assert await backend.queues() == [(b"f", 1, 0)]


async def test_release_queues_a_job_again_under_the_fence(backend: ClusterBackend) -> None:
    [(job_id, _)] = await backend.submit([job(b"a")], b"H")
    server = await backend.register("s", 30)
    [claimed] = await backend.claim(server, [(b"f", 1)])
    await backend.release([(job_id, claimed.claim + 1, 7)])  # a stale release: no effect
    assert await backend.claim(server, [(b"f", 1)]) == []
    await backend.release([(job_id, claimed.claim, 3)])
    [again] = await backend.claim(server, [(b"f", 1)])
    assert (again.claim, again.retries) == (2, 3)


async def test_status_progress_and_members(backend: ClusterBackend) -> None:
    [(job_id, _)] = await backend.submit([job(b"a", b"u")], b"H")
    assert await backend.status(job_id) == (b"H", 0, 0, 0)
    assert await backend.status_unique(b"u") == (0, 0, 0)
    server = await backend.register("me", 30)
    [claimed] = await backend.claim(server, [(b"f", 1)])
    await backend.progress([(job_id, claimed.claim, 3, 10)])
    await backend.progress([(job_id, claimed.claim - 1, 9, 9)])  # stale: ignored
    assert await backend.status(job_id) == (b"H", 2, 3, 10)
    assert await backend.status_unique(b"u") == (2, 3, 10)
    assert await backend.queues() == [(b"f", 1, 1)]
    [(member, name, age, left, running)] = await backend.members()
    assert (member, name, running) == (server, "me", 1)
    assert 0 <= age < 30 and 0 < left <= 30
    await backend.ack([(job_id, claimed.claim)])
    await backend.leave(server)
    assert await backend.members() == []


async def test_epoch_jobs_wait_for_their_time(backend: ClusterBackend) -> None:
    later = int(time.time()) + 3600
    await backend.submit([job(b"later", when=later), job(b"now")], b"H")
    server = await backend.register("s", 30)
    assert [c.data for c in await backend.claim(server, [(b"f", 5)])] == [b"now"]
    assert await backend.queues() == [(b"f", 2, 1)]


async def test_a_retry_waits_its_delay_under_the_fence(backend: ClusterBackend) -> None:
    [(job_id, _)] = await backend.submit([job(b"a", b"u")], b"H")
    server = await backend.register("s", 30)
    [claimed] = await backend.claim(server, [(b"f", 1)])
    await backend.progress([(job_id, claimed.claim, 1, 2)])
    outcomes = '[["fail", "", "w", 1.0]]'
    await backend.retry([Retry(job_id, claimed.claim + 1, 0, 9, "[]", 0.0)])  # stale
    assert await backend.status(job_id) == (b"H", 2, 1, 2)
    await backend.retry([Retry(job_id, claimed.claim, 0, 1, outcomes, 1.0)])
    assert await backend.status(job_id) == (b"H", 0, 0, 0)  # known, not running, no progress
    assert await backend.status_unique(b"u") == (0, 0, 0)
    assert await backend.claim(server, [(b"f", 1)]) == []  # not due yet

    async def due() -> list[Claimed]:
        return await backend.claim(server, [(b"f", 1)])

    got: list[Claimed] = []
    await wait_for(lambda: _claimed_into(got, due()), timeout=10, interval=0.1)
    [again] = got
    assert (again.id, again.claim, again.failures) == (job_id, 2, 1)
    assert decode_outcomes(again.outcomes) == decode_outcomes(outcomes)
    await backend.retry([Retry(job_id, again.claim, 0, 2, outcomes, 0.0)])  # at once
    [third] = await backend.claim(server, [(b"f", 1)])
    assert (third.claim, third.failures) == (3, 2)


async def _claimed_into(got: list[Claimed], claim: Awaitable[list[Claimed]]) -> bool:
    got.extend(await claim)
    return bool(got)


async def test_the_failed_set(backend: ClusterBackend) -> None:
    ids = [i for i, _ in await backend.submit([job(b"a", b"u"), job(b"b", function=b"g")], b"H")]
    server = await backend.register("s", 30)
    claimed = {c.id: c for c in await backend.claim(server, [(b"f", 1), (b"g", 1)])}
    outcomes = '[["exception", "boom", "w", 1.0]]'
    stale = [Failure(ids[0], claimed[ids[0]].claim + 1, 1, outcomes, "x")]
    await backend.fail(stale)
    assert await backend.failed_jobs() == []
    reason = "exception: boom"
    await backend.fail([Failure(i, claimed[i].claim, 3, outcomes, reason) for i in ids])
    assert await backend.queues() == []
    assert await backend.failed_counts() == {b"f": 1, b"g": 1}
    records = await backend.failed_jobs()
    assert [r.handle for r in records] == [b"H:c%d" % i for i in ids]
    first = records[0]
    assert (first.function, first.unique, first.data, first.attempts) == (b"f", b"u", b"a", 3)
    assert first.reason == "exception: boom" and abs(first.failed_at - time.time()) < 60
    assert [(o.kind, o.message) for o in first.outcomes] == [("exception", "boom")]
    assert [r.function for r in await backend.failed_jobs(function=b"g")] == [b"g"]
    assert await backend.failed_jobs(ids[0], b"other") == []
    # The unique key is free while the job is failed: a new submission is a new job.
    [(taker, _)] = await backend.submit([job(b"new", b"u")], b"H")
    assert taker not in ids
    # Retried under the same id; the key stays with the job that took it.
    assert await backend.retry_failed(ids[0], b"H") == 1
    assert await backend.failed_counts() == {b"g": 1}
    again = {c.id: c for c in await backend.claim(server, [(b"f", 2)])}
    assert set(again) == {ids[0], taker}
    assert (again[ids[0]].claim, again[ids[0]].failures) == (claimed[ids[0]].claim + 1, 0)
    assert len(decode_outcomes(again[ids[0]].outcomes)) == 1
    await backend.ack([(taker, again[taker].claim)])
    assert await backend.status_unique(b"u") is None  # the retried job runs without the key
    assert await backend.delete_failed(function=b"f") == 0
    assert await backend.delete_failed(ids[1], b"H") == 1
    assert await backend.failed_jobs() == [] and await backend.failed_counts() == {}


async def test_retrying_a_failed_job_restores_its_unique_key(backend: ClusterBackend) -> None:
    [(job_id, _)] = await backend.submit([job(b"a", b"u")], b"H")
    server = await backend.register("s", 30)
    [claimed] = await backend.claim(server, [(b"f", 1)])
    await backend.fail([Failure(job_id, claimed.claim, 1, "[]", "fail")])
    assert await backend.retry_failed(function=b"f") == 1
    assert await backend.submit([job(b"b", b"u")], b"H2") == [(job_id, b"H")]


async def test_the_failed_set_is_trimmed_by_count_and_age(backend: ClusterBackend) -> None:
    ids = [i for i, _ in await backend.submit([job(b"%d" % n) for n in range(5)], b"H")]
    server = await backend.register("s", 30)
    for c in await backend.claim(server, [(b"f", 5)]):
        await backend.fail([Failure(c.id, c.claim, 1, "[]", "fail")])  # in order, one by one
    assert await backend.trim_failed(10, 3600) == 0
    assert await backend.trim_failed(2, 3600) == 3
    assert [r.handle for r in await backend.failed_jobs()] == [b"H:c%d" % i for i in ids[3:]]
    await asyncio.sleep(0.01)  # "older than 0 s": not failed within this very millisecond
    assert await backend.trim_failed(10, 0) == 2
    assert await backend.failed_counts() == {}


async def test_a_firing_submits_once(backend: ClusterBackend) -> None:
    tick = job(b"t", function=b"tick")
    job_id = await backend.fire(b"cron:tick:202612021030", tick, b"H")
    assert job_id is not None
    assert await backend.fire(b"cron:tick:202612021030", tick, b"H2") is None
    server = await backend.register("s", 30)
    [claimed] = await backend.claim(server, [(b"tick", 5)])
    assert (claimed.id, claimed.unique, claimed.data) == (job_id, b"cron:tick:202612021030", b"t")
    await backend.ack([(job_id, claimed.claim)])
    # The firing is remembered after its job finished.
    assert await backend.fire(b"cron:tick:202612021030", tick, b"H") is None
    assert await backend.fire(b"cron:tick:202612021031", tick, b"H") is not None


async def test_cancel_deletes_only_a_queued_job(backend: ClusterBackend) -> None:
    first, second = await backend.submit([job(b"a", b"u"), job(b"b")], b"H")
    assert await backend.cancel(first[0], b"other") is None
    assert await backend.cancel(first[0], b"H") is True
    assert await backend.cancel(first[0], b"H") is None
    assert await backend.status_unique(b"u") is None
    assert await backend.submit([job(b"a", b"u")], b"H") != [first]  # the key is free
    server = await backend.register("s", 30)
    claimed = await backend.claim(server, [(b"f", 5)])
    assert second[0] in {c.id for c in claimed}
    assert await backend.cancel(second[0], b"H") is False
    assert await backend.queues() == [(b"f", 2, 2)]


async def test_a_server_death_is_a_lost_workers_attempt(backend: ClusterBackend) -> None:
    [(job_id, _)] = await backend.submit([job(b"a")], b"H")
    for n in (1, 2):
        dying = await backend.register("dying", SHORT)
        assert len(await backend.claim(dying, [(b"f", 1)])) == 1
        assert await expired(backend, retry_limit=2) == (1, 2 - n, n - 1)
    [record] = await backend.failed_jobs()
    assert record.handle == b"H:c%d" % job_id and record.attempts == 2
    assert record.reason == "worker_lost: its server stopped renewing its lease"
    assert [o.kind for o in record.outcomes] == ["worker_lost"] * 2
    assert "stopped renewing its lease" in record.outcomes[0].message
    assert await backend.queues() == []


async def test_a_submissions_policy_and_keep_travel_with_its_row(backend: ClusterBackend) -> None:
    """Whoever claims or rescues the job gets the policy and the keep_result its
    submission carried; a job without them gets none."""
    words = "attempts=3;on=worker_lost;backoff=0.0;cap=3600.0;jitter=0.0"
    await backend.submit([job(b"a")._replace(retry=words, keep=60.0), job(b"b")], b"H")
    server = await backend.register("one", 30)
    first, second = await backend.claim(server, [(b"f", 2)])
    assert (first.retry, first.keep, second.retry, second.keep) == (words, 60.0, "", 0.0)
    await backend.release([(c.id, c.claim, c.retries) for c in (first, second)])
    dying = await backend.register("dying", SHORT)
    assert len(await backend.claim(dying, [(b"f", 2)])) == 2
    # One attempt in all by the built-in policy: b fails for good; a's own policy
    # allows three, so it is queued again.
    assert await expired(backend, retry_limit=1) == (1, 1, 1)
    [again] = await backend.claim(server, [(b"f", 1)])
    assert (again.data, again.retry, again.keep, again.failures) == (b"a", words, 60.0, 1)


@pytest.mark.parametrize("shared_store", [PostgresShared], ids=["postgres"], indirect=True)
async def test_a_jobs_table_of_the_version_before_gets_the_new_columns(
    shared_store: PostgresShared,
) -> None:
    """A cluster's jobs table made before submissions' policies and keeps were
    stored keeps its jobs, which have none; new ones keep theirs."""
    conn = await asyncpg.connect(database=shared_store.database, **shared_store.address)
    try:
        await conn.execute(
            "CREATE TABLE queue_cluster_jobs (id BIGSERIAL PRIMARY KEY,"
            " function_name BYTEA NOT NULL, unique_key BYTEA NOT NULL, coalesce_key BYTEA,"
            " priority SMALLINT NOT NULL, state SMALLINT NOT NULL DEFAULT 0,"
            " run_at TIMESTAMPTZ NOT NULL, owner BIGINT, attempt INTEGER NOT NULL DEFAULT 0,"
            " retries INTEGER NOT NULL DEFAULT 0, numerator BIGINT NOT NULL DEFAULT 0,"
            " denominator BIGINT NOT NULL DEFAULT 0, prefix BYTEA NOT NULL,"
            " reducer BYTEA NOT NULL, data BYTEA NOT NULL,"
            " failures INTEGER NOT NULL DEFAULT 0, outcomes JSONB NOT NULL DEFAULT '[]')"
        )
        await conn.execute(
            "INSERT INTO queue_cluster_jobs (function_name, unique_key, priority, run_at,"
            " prefix, reducer, data) VALUES ('f', '', 1, now(), 'H', '', 'old')"
        )
    finally:
        await conn.close()
    backend = shared_store.backend()
    await backend.open(lambda: None)
    try:
        await backend.submit([job(b"new")._replace(retry="attempts=2", keep=5.0)], b"H")
        server = await backend.register("one", 30)
        claimed = await backend.claim(server, [(b"f", 2)])
        assert [(c.data, c.retry, c.keep) for c in claimed] == [
            (b"old", "", 0.0),
            (b"new", "attempts=2", 5.0),
        ]
    finally:
        await backend.close()


# PostgreSQL fences by the claim alone: its ids are never handed out again.
@pytest.mark.parametrize("shared_store", [RedisShared], ids=["redis"], indirect=True)
async def test_on_redis_only_the_owner_retries_or_fails_a_job(
    backend: ClusterBackend, shared_store: SharedStore
) -> None:
    """Redis fences by the owner too: after Redis lost writes, an id and claim
    may name another server's job."""
    other = shared_store.backend()
    await other.open(lambda: None)
    try:
        [(job_id, _)] = await backend.submit([job(b"a")], b"H")
        owner = await other.register("owner", 30)
        [claimed] = await other.claim(owner, [(b"f", 1)])
        await backend.register("bystander", 30)
        await backend.fail([Failure(job_id, claimed.claim, 1, "[]", "fail")])
        await backend.retry([Retry(job_id, claimed.claim, 0, 1, "[]", 0.0)])
        await backend.release([(job_id, claimed.claim, 1)])
        assert await backend.status(job_id) == (b"H", 2, 0, 0)
        assert await backend.failed_jobs() == []
        await other.fail([Failure(job_id, claimed.claim, 1, "[]", "fail")])
        assert [r.handle for r in await backend.failed_jobs()] == [b"H:c%d" % job_id]
    finally:
        await other.close()


async def test_paused_functions_are_shared(backend: ClusterBackend) -> None:
    assert await backend.paused() == []
    await backend.set_paused(b"video", True)
    await backend.set_paused(b"email", True)
    await backend.set_paused(b"email", True)  # again: kept once
    await backend.set_paused(b"never", False)
    assert await backend.paused() == [b"email", b"video"]
    await backend.set_paused(b"video", False)
    assert await backend.paused() == [b"email"]


async def test_kept_results(backend: ClusterBackend) -> None:
    now = time.time()
    done = KeptResult(b"H:a:c1", b"f", "complete", b"\0out\xff", 60.0, now)
    failed = KeptResult(b"H:a:c2", b"f", "exception", b"ValueError", 0.5, now)
    await backend.write_results([done, failed], [])
    assert await backend.result(b"H:a:c1") == done
    assert await backend.result(b"H:a:c2") == failed
    replaced = done._replace(status="fail", data=b"")
    await backend.write_results([replaced], [b"H:a:c9"])
    assert await backend.result(b"H:a:c1") == replaced
    await backend.trim_results(now + 1)  # Redis expires them itself

    async def gone() -> bool:
        return await backend.result(b"H:a:c2") is None

    await wait_for(gone, timeout=10, interval=0.1)
    assert await backend.result(b"H:a:c1") == replaced
    await backend.write_results([], [b"H:a:c1"])
    assert await backend.result(b"H:a:c1") is None
