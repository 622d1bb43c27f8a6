"""The shared store's operations, the same on PostgreSQL and Redis (what
geartrain.cluster.backend.ClusterBackend promises), driven without servers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from geartrain.cluster import Submission
from geartrain.cluster.backend import ClusterBackend
from gt_helpers import wait_for

from .conftest import SharedStore

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
    """Sweep until a server with a SHORT lease has expired; the sweep's counts."""
    swept: list[tuple[int, int, int]] = []

    async def sweep() -> bool:
        swept.append(await backend.rescue(retry_limit))
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
    assert all(c.attempt == 1 and c.prefix == b"H" and c.retries == 0 for c in got)
    late = await backend.register("late", SHORT)
    await expired(backend)
    assert await backend.claim(late, [(b"f", 3)]) == []
    assert not await backend.renew(late, 30)
    assert await backend.renew(server, 30)
    for data in (b"n2", b"l1", b"l2"):  # within a priority, the oldest first
        assert [c.data for c in await backend.claim(server, [(b"f", 1)])] == [data]


async def test_acknowledgements_are_fenced_by_the_attempt(backend: ClusterBackend) -> None:
    [(job_id, _)] = await backend.submit([job(b"a", b"u")], b"H")
    lost = await backend.register("lost", SHORT)
    [first] = await backend.claim(lost, [(b"f", 1)])
    assert await expired(backend) == (1, 1, 0)  # its running job queued again
    other = await backend.register("other", 30)
    [again] = await backend.claim(other, [(b"f", 1)])
    assert (again.id, again.attempt, again.retries) == (job_id, 2, 1)
    assert await backend.ack([(job_id, first.attempt)]) == set()  # the late one
    assert await backend.status(job_id) == (b"H", 2, 0, 0)
    assert await backend.ack([(job_id, again.attempt)]) == {job_id}
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
    await backend.release([(job_id, claimed.attempt + 1, 7)])  # a stale release: no effect
    assert await backend.claim(server, [(b"f", 1)]) == []
    await backend.release([(job_id, claimed.attempt, 3)])
    [again] = await backend.claim(server, [(b"f", 1)])
    assert (again.attempt, again.retries) == (2, 3)


async def test_status_progress_and_members(backend: ClusterBackend) -> None:
    [(job_id, _)] = await backend.submit([job(b"a", b"u")], b"H")
    assert await backend.status(job_id) == (b"H", 0, 0, 0)
    assert await backend.status_unique(b"u") == (0, 0, 0)
    server = await backend.register("me", 30)
    [claimed] = await backend.claim(server, [(b"f", 1)])
    await backend.progress([(job_id, claimed.attempt, 3, 10)])
    await backend.progress([(job_id, claimed.attempt - 1, 9, 9)])  # stale: ignored
    assert await backend.status(job_id) == (b"H", 2, 3, 10)
    assert await backend.status_unique(b"u") == (2, 3, 10)
    assert await backend.queues() == [(b"f", 1, 1)]
    [(member, name, age, left, running)] = await backend.members()
    assert (member, name, running) == (server, "me", 1)
    assert 0 <= age < 30 and 0 < left <= 30
    await backend.ack([(job_id, claimed.attempt)])
    await backend.leave(server)
    assert await backend.members() == []


async def test_epoch_jobs_wait_for_their_time(backend: ClusterBackend) -> None:
    later = int(time.time()) + 3600
    await backend.submit([job(b"later", when=later), job(b"now")], b"H")
    server = await backend.register("s", 30)
    assert [c.data for c in await backend.claim(server, [(b"f", 5)])] == [b"now"]
    assert await backend.queues() == [(b"f", 2, 1)]
