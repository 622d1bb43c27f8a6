"""The Store contract, run against every backend on a real server: what a store keeps,
how it fails (a taken id, a bad table name, a server that cannot be reached or goes
away and comes back)."""

from __future__ import annotations

from pathlib import Path

import pytest

from geartrain.store import Store, StoreError, store_class
from geartrain.store.records import Attempt, FailedJob, KeptResult, decode_outcomes, encode_outcomes
from serverproc import free_port

from .conftest import BACKENDS, MYSQL, PG, REDIS, MakeStore, job
from .proxy import TcpProxy

pytestmark = [pytest.mark.backend, pytest.mark.timeout(30)]

# SQLite at both levels: the crash level appends to its log, the power level commits.
TRANSACTIONAL = ["sqlite-power", "postgres", "mysql", "redis"]
# The backends behind a network connection, and where their servers are.
SERVICES = {"postgres": PG, "mysql": MYSQL, "redis": REDIS}


@pytest.fixture(params=["sqlite", *TRANSACTIONAL])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_is_a_store(store: Store) -> None:
    assert isinstance(store, Store)
    assert str(store)


async def test_new_store_is_empty(store: Store) -> None:
    assert await store.load() == []


async def test_load_returns_every_job_in_id_order(store: Store) -> None:
    await store.write([job(1), job(2, priority=0), job(3, priority=2)], [])
    await store.write([job(7), job(5), job(6)], [])  # order within a batch does not matter
    expected = [job(1), job(2, priority=0), job(3, priority=2), job(5), job(6), job(7)]
    assert await store.load() == expected


async def test_done_deletes_and_ignores_unknown_ids(store: Store) -> None:
    await store.write([job(i) for i in range(1, 11)], [])
    await store.write([], [2, 4, 6, 8, 10, 999])
    assert [j.id for j in await store.load()] == [1, 3, 5, 7, 9]


async def test_add_and_done_in_one_write(store: Store) -> None:
    await store.write([job(1), job(2)], [])
    await store.write([job(3), job(4)], [1])
    assert [j.id for j in await store.load()] == [2, 3, 4]


async def test_epoch_and_priorities_kept(store: Store) -> None:
    jobs = [
        job(1, when=1_900_000_000),
        job(2, priority=0),
        job(3, priority=2, when=4_102_444_800),  # beyond 2^31: year 2100
    ]
    await store.write(jobs, [])
    assert await store.load() == jobs


async def test_binary_data_and_names(store: Store) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB with every byte value
    jobs = [
        job(1, data=b"a\0b\0\0c\xff"),
        job(2, data=big),
        job(3, data=b""),
        job(4, function=b"f\xff\xfe-\xc3", unique=b"\x80\x81 \xe9t\xe9"),
        job(5, function="café".encode(), unique="ключ".encode()),
    ]
    await store.write(jobs, [])
    assert await store.load() == jobs


async def test_empty_and_duplicate_uniques_are_distinct_jobs(store: Store) -> None:
    jobs = [
        job(1, unique=b""),
        job(2, unique=b""),
        job(3, unique=b"same"),
        job(4, unique=b"same"),
        job(5, unique=b"same", function=b"other"),
    ]
    await store.write(jobs, [])
    assert await store.load() == jobs
    await store.write([], [2, 3])
    assert [j.id for j in await store.load()] == [1, 4, 5]


async def test_reopen_keeps_jobs(make_store: MakeStore) -> None:
    first = make_store()
    await first.open()
    await first.write([job(1), job(2)], [])
    await first.close()
    await first.close()  # idempotent
    second = make_store()
    await second.open()
    assert [j.id for j in await second.load()] == [1, 2]
    await second.write([job(3)], [1])
    await second.close()
    await first.open()  # the same object can be opened again
    assert [j.id for j in await first.load()] == [2, 3]


# A store that logs does not look for a taken id (the server never reuses one).
@pytest.mark.parametrize("backend", TRANSACTIONAL)
async def test_failed_write_raises_and_writes_nothing(store: Store) -> None:
    await store.write([job(1), job(2)], [])
    with pytest.raises(StoreError):
        # Id 2 is taken, so the whole batch (new jobs and deletions) must fail.
        await store.write([job(3), job(2, data=b"again"), job(4)], [1])
    assert await store.load() == [job(1), job(2)]
    await store.write([job(3)], [1])  # the store still works
    assert [j.id for j in await store.load()] == [2, 3]


@pytest.mark.parametrize("backend", TRANSACTIONAL)
async def test_same_id_twice_in_one_write_fails(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.write([job(1), job(2), job(1, data=b"again")], [])
    assert await store.load() == []


async def test_big_batches(store: Store) -> None:
    jobs = [job(i, data=b"x" * (i % 100)) for i in range(1, 5001)]
    await store.write(jobs, [])
    assert await store.load() == jobs
    await store.write([job(5001)], [j.id for j in jobs])
    assert await store.load() == [job(5001)]


async def test_use_before_open_raises(make_store: MakeStore) -> None:
    store = make_store()
    with pytest.raises(StoreError):
        await store.write([job(1)], [])
    with pytest.raises(StoreError):
        await store.load()
    await store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_names_resolve(backend: str) -> None:
    assert store_class(backend.upper()).__module__ == f"geartrain.store.{backend}"


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_table_name_must_be_an_identifier(make_store: MakeStore) -> None:
    for name in ("queue; DROP TABLE x", "queue`; DROP TABLE x"):
        with pytest.raises(ValueError, match="table name"):
            make_store(table=name)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_unreachable_store_raises_store_error_saying_where(
    backend: str, make_store: MakeStore, tmp_path: Path
) -> None:
    if backend == "sqlite":
        store, where = make_store(path=tmp_path), str(tmp_path)  # a directory, not a file
    else:
        port = free_port()
        store = make_store(host="127.0.0.1", port=port, connect_timeout=2)
        where = f"port={port}" if backend == "postgres" else f"127.0.0.1:{port}"
    with pytest.raises(StoreError, match=where):
        await store.open()


@pytest.mark.parametrize("backend", SERVICES)
async def test_outage_fails_writes_then_recovers(backend: str, make_store: MakeStore) -> None:
    service = SERVICES[backend]
    proxy = await TcpProxy(str(service["host"]), int(service["port"])).start()  # type: ignore[call-overload]
    store = make_store(host="127.0.0.1", port=proxy.port, connect_timeout=2)
    try:
        await store.open()
        await store.write([job(1), job(2)], [])
        await proxy.stop()  # the database vanishes, connections and all
        for i in (3, 4):
            with pytest.raises(StoreError):
                await store.write([job(i)], [1])
        await proxy.start()  # and comes back on the same address
        await store.write([job(5)], [1])
        assert [j.id for j in await store.load()] == [2, 5]
    finally:
        await store.close()
        await proxy.stop()


# -- retries and the failed-job set ------------------------------------------------

OUTCOMES = (
    Attempt("fail", "", "w-1", 1_800_000_000.25),
    Attempt("exception", "bad\ttab", "-", 2.5),
)


async def test_retry_fields_are_kept(store: Store) -> None:
    retry = job(1, handle=b"H:x:7", failures=2, outcomes=encode_outcomes(OUTCOMES), when=5)
    plain = job(2, handle=b"H:x:8")
    await store.write([retry, plain], [])
    assert await store.load() == [retry, plain]
    assert decode_outcomes((await store.load())[0].outcomes) == OUTCOMES


async def test_a_submissions_retry_policy_is_kept(make_store: MakeStore) -> None:
    """The policy a submission carried (its words, or none) survives a reopen."""
    words = "attempts=4;on=fail,exception;backoff=2.0;cap=3600.0;jitter=0.0"
    kept = job(1, handle=b"H:x:1", retry=words)
    failed_once = job(2, handle=b"H:x:2", failures=1, outcomes="[]", retry=words, when=9)
    plain = job(3, handle=b"H:x:3")
    first = make_store()
    await first.open()
    try:
        await first.write([kept, failed_once, plain], [])
        assert await first.load() == [kept, failed_once, plain]
    finally:
        await first.close()
    second = make_store()
    await second.open()
    try:
        assert [j.retry for j in await second.load()] == [words, words, ""]
    finally:
        await second.close()


def failed(handle: bytes, at: float, **kw: object) -> FailedJob:
    fields: dict[str, object] = {
        "function": b"f\xff",
        "unique": b"u",
        "data": b"\0data",
        "priority": 2,
        "attempts": 3,
        "failed_at": at,
        "reason": "exception: bad",
        "outcomes": OUTCOMES,
    }
    fields.update(kw)
    return FailedJob(handle, **fields)  # type: ignore[arg-type]


async def test_kept_results_round_trip(make_store: MakeStore) -> None:
    """Kept results survive a reopen, in the order they were kept; a replaced one
    goes to the end; binary data is kept exactly."""
    store = make_store()
    await store.open()
    assert await store.load_results() == []
    pending = KeptResult(b"H:x:1", b"f\xff", "pending", b"", 3600.0)
    done = KeptResult(b"H:x:2", b"f", "complete", b"\0\xff\r\nout", 60.0, 1_800_000_000.25)
    failed_one = KeptResult(b"H:x:3", b"f", "exception", b"ValueError", 60.0, 1_800_000_001.5)
    await store.write_results([pending, done], [])
    await store.write_results([failed_one], [])
    assert await store.load_results() == [pending, done, failed_one]
    ended = pending._replace(status="complete", data=b"ok", ended_at=1_800_000_002.0)
    await store.write_results([ended], [b"H:x:2", b"H:x:none"])
    await store.close()
    reopened = make_store()
    await reopened.open()
    assert await reopened.load_results() == [failed_one, ended]
    await reopened.write_results([], [b"H:x:1", b"H:x:3"])
    assert await reopened.load_results() == []
    assert await reopened.load() == []  # the queue is untouched


async def test_failed_set_round_trip(make_store: MakeStore) -> None:
    store = make_store()
    await store.open()
    assert await store.load_failed() == []
    first, second = failed(b"H:x:2", 1_800_000_000.5), failed(b"H:x:1", 1_800_000_001.0)
    await store.write_failed([second, first], [])
    assert await store.load_failed() == [first, second]  # oldest first
    replaced = failed(b"H:x:2", 1_800_000_002.0, attempts=4)
    await store.write_failed([replaced], [b"H:x:1", b"H:x:none"])
    await store.close()
    reopened = make_store()
    await reopened.open()
    assert await reopened.load_failed() == [replaced]
    await reopened.write_failed([], [b"H:x:2"])
    assert await reopened.load_failed() == []
    assert await reopened.load() == []  # the queue is untouched


async def test_paused_functions_round_trip(make_store: MakeStore) -> None:
    store = make_store()
    await store.open()
    assert await store.load_paused() == []
    await store.save_paused(b"video", True)
    await store.save_paused(b"email", True)
    await store.save_paused(b"email", True)  # again: no error, kept once
    await store.save_paused(b"bin\x00\xff", True)
    await store.save_paused(b"never", False)  # not paused: nothing to forget
    await store.close()
    reopened = make_store()
    await reopened.open()
    assert await reopened.load_paused() == [b"bin\x00\xff", b"email", b"video"]
    await reopened.save_paused(b"email", False)
    assert await reopened.load_paused() == [b"bin\x00\xff", b"video"]
    assert await reopened.load() == []  # the queue is untouched


async def test_check_passes_on_a_store_that_takes_writes(store: Store) -> None:
    await store.check()
