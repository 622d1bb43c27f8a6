"""SQLite specifics: WAL and fsync settings, the single thread, directories, a full
disk, and starting on queues written by gearmand's libsqlite3 plugin or an earlier
geartrain (what every backend does is in test_contract.py)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import serverproc
from geartrain.protocol import PacketType
from geartrain.store import StoredJob, StoreError
from geartrain.store.durability import Durability
from geartrain.store.sqlite import SqliteStore, _batches
from wire import admin_command, submit_background

pytestmark = pytest.mark.timeout(60)

T = PacketType


def job(i: int, data: bytes = b"x") -> StoredJob:
    return StoredJob(i, b"fn", b"u%d" % i, data, 1, 0)


@pytest.mark.parametrize(("level", "sync"), [("crash", 1), ("power", 2)])
async def test_wal_and_the_levels_sync(tmp_path: Path, level: str, sync: int) -> None:
    store = SqliteStore(tmp_path / "q.db", durability=Durability(level))
    await store.open()
    try:
        # FULL (2) fsyncs the WAL at each commit, NORMAL (1) leaves it to the
        # background sync; journal_mode is kept in the file.
        assert (
            await store._run(lambda: store._conn.execute("PRAGMA synchronous").fetchone()[0])
            == sync
        )  # type: ignore[union-attr]
        with sqlite3.connect(tmp_path / "q.db") as other:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await store.close()


async def test_every_call_runs_on_one_thread(tmp_path: Path) -> None:
    # At the power level writes fsync, so they too run on the store's thread.
    store = SqliteStore(tmp_path / "q.db", durability=Durability.POWER)
    await store.open()
    try:
        for i in range(1, 6):
            await store.write([job(i)], [])
        threads = {await store._run(threading.get_ident) for _ in range(5)}
        assert len(threads) == 1
        assert threads != {threading.get_ident()}
        names = [t.name for t in threading.enumerate() if t.name.startswith("geartrain-sqlite")]
        assert len(names) == 1
    finally:
        await store.close()


@pytest.mark.parametrize("level", ["crash", "power"])
async def test_a_write_of_many_rows_spans_statements_and_keeps_every_row(
    tmp_path: Path, level: str
) -> None:
    # Rows go a few dozen to a statement, within a few megabytes of payload: more
    # small jobs than one statement binds, and large ones that pass the payload
    # bound, all arrive, and all go again in one write.
    small = [
        StoredJob(i, b"fn", b"u%d" % i, b"%d" % i, i % 3, i, b"H:%d" % i) for i in range(1_000)
    ]
    large = [job(20_000 + i, bytes([i]) * (1 << 20)) for i in range(9)]
    store = SqliteStore(tmp_path / "q.db", durability=Durability(level))
    await store.open()
    try:
        await store.write(small + large, [])
        await store.close()  # the crash level's log goes into the table
        await store.open()
        assert sorted(await store.load()) == sorted(small + large)
        await store.write([], [j.id for j in small + large])
        await store.close()
        await store.open()
        assert await store.load() == []
    finally:
        await store.close()


def test_a_statement_binds_a_few_dozen_rows_and_a_few_megabytes() -> None:
    # SQLite copies what a statement binds: its payloads stay within the bound, or
    # are one row's, whatever the mix of sizes.
    sizes = [10] * 100 + [3 << 20] * 3 + [10] * 5 + [64 << 20] + [1 << 20] * 40
    runs = list(_batches(range(len(sizes)), sizes.__getitem__))
    assert [i for run in runs for i in run] == list(range(len(sizes)))
    assert max(map(len, runs)) <= 32
    assert all(len(run) == 1 or sum(sizes[i] for i in run) <= 4 << 20 for run in runs)


async def test_creates_missing_directories(tmp_path: Path) -> None:
    path = tmp_path / "state" / "geartrain" / "queue.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.write([job(1)], [])
    await store.close()
    assert path.exists()


async def test_table_that_is_not_a_queue(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "q.db") as conn:
        conn.execute("CREATE TABLE gearman_queue (id INTEGER, name TEXT)")
    store = SqliteStore(tmp_path / "q.db")
    with pytest.raises(StoreError, match="not a job queue"):
        await store.open()
    await store.close()


def limit_pages(store: SqliteStore, pages: int) -> None:
    """Keep the file from growing past ``pages``: "database or disk is full"."""
    assert store._conn is not None
    store._conn.execute(f"PRAGMA max_page_count = {pages}")


async def page_count(store: SqliteStore) -> int:
    return int(await store._run(lambda: store._conn.execute("PRAGMA page_count").fetchone()[0]))  # type: ignore[union-attr]


async def test_full_database_fails_the_write_and_recovers(tmp_path: Path) -> None:
    # At the power level the transaction is the acknowledgement.
    store = SqliteStore(tmp_path / "q.db", durability=Durability.POWER)
    await store.open()
    try:
        await store.write([job(1)], [])
        await store._run(limit_pages, store, await page_count(store))
        with pytest.raises(StoreError, match="full"):
            await store.write([job(2, b"y" * 200_000)], [1])
        assert await store.load() == [job(1)]
        await store._run(limit_pages, store, 1 << 30)  # space again
        await store.write([job(2, b"y" * 200_000)], [1])
        assert await store.load() == [job(2, b"y" * 200_000)]
    finally:
        await store.close()


async def test_full_database_keeps_the_log_until_a_checkpoint_succeeds(tmp_path: Path) -> None:
    # At the crash level the log is the acknowledgement: a table that cannot
    # take the checkpoint leaves the jobs in the log (which loading reads), and
    # a restart replays it.
    path = tmp_path / "q.db"
    store = SqliteStore(path)
    await store.open()
    try:
        await store.write([job(1)], [])
        assert await store.load() == [job(1)]
        await store._run(limit_pages, store, await page_count(store))
        await store.write([job(2, b"y" * 200_000)], [1])
        assert await store.load() == [job(2, b"y" * 200_000)]
        assert list(tmp_path.glob("q.db.pending-*"))
    finally:
        await store.close()  # its last checkpoint fails too: the log stays
    assert list(tmp_path.glob("q.db.pending-*"))
    again = SqliteStore(path)
    await again.open()
    try:
        assert await again.load() == [job(2, b"y" * 200_000)]
    finally:
        await again.close()
    assert not list(tmp_path.glob("q.db.pending-*"))


async def test_gearmand_table_without_epoch_column(tmp_path: Path) -> None:
    """gearmand before 0.41 wrote no when_to_run column."""
    with sqlite3.connect(tmp_path / "q.db") as conn:
        conn.execute(
            "CREATE TABLE gearman_queue (unique_key TEXT, function_name TEXT, priority INTEGER,"
            " data BLOB, PRIMARY KEY (unique_key, function_name))"
        )
        conn.executemany(
            "INSERT INTO gearman_queue VALUES (?, ?, ?, ?)",
            [("a", "f", 2, b"low"), ("b", "f", 1, b"normal"), ("c", "f", 0, b"high")],
        )
    store = SqliteStore(tmp_path / "q.db")
    await store.open()
    try:
        assert await store.load() == [
            StoredJob(1, b"f", b"c", b"high", 0, 0),
            StoredJob(2, b"f", b"b", b"normal", 1, 0),
            StoredJob(3, b"f", b"a", b"low", 2, 0),
        ]
    finally:
        await store.close()


@pytest.mark.interop
async def test_starts_on_a_queue_written_by_gearmand(
    tmp_path: Path, start_server: Callable[..., serverproc.ServerProc]
) -> None:
    db = tmp_path / "gearmand.sqlite3"
    args = ["-q", "libsqlite3", f"--libsqlite3-db={db}"]
    gearmand = start_server("gearmand", args)
    port = gearmand.port
    # No worker runs, so every job stays queued in gearmand's table.
    submit_background(port, T.SUBMIT_JOB_BG, b"resize", b"n1", b"normal 1")
    submit_background(port, T.SUBMIT_JOB_LOW_BG, b"resize", b"l1", b"low 1")
    submit_background(port, T.SUBMIT_JOB_HIGH_BG, b"resize", b"h1", b"high 1")
    submit_background(port, T.SUBMIT_JOB_BG, b"email", b"n2", b"bin\0ary\xff")
    submit_background(port, T.SUBMIT_JOB_EPOCH, b"email", b"e1", b"4102444800", b"later")
    submit_background(port, T.SUBMIT_JOB_HIGH_BG, b"email", b"h2", b"high 2")
    # An empty payload: gearmand 1.1 stores NULL and then cannot replay its own table.
    submit_background(port, T.SUBMIT_JOB_BG, b"email", b"", b"")
    gearmand.stop()

    store = SqliteStore(db)
    await store.open()
    try:
        jobs = await store.load()
        # Priority first, then gearmand's row order; epoch time and binary data kept.
        assert [(j.id, j.function, j.unique, j.data, j.priority, j.when) for j in jobs] == [
            (1, b"resize", b"h1", b"high 1", 0, 0),
            (2, b"email", b"h2", b"high 2", 0, 0),
            (3, b"resize", b"n1", b"normal 1", 1, 0),
            (4, b"email", b"n2", b"bin\0ary\xff", 1, 0),
            (5, b"email", b"e1", b"later", 1, 4102444800),
            (6, b"email", b"", b"", 1, 0),
            (7, b"resize", b"l1", b"low 1", 2, 0),
        ]
        # geartrain carries on in the converted table.
        await store.write([StoredJob(8, b"resize", b"", b"new", 1, 0)], [1, 3])
        assert [j.id for j in await store.load()] == [2, 4, 5, 6, 7, 8]
    finally:
        await store.close()

    # And gearmand can still read the converted table (switching back loses nothing).
    gearmand = start_server("gearmand", args)
    status = admin_command(gearmand.port, "status").decode()
    assert sorted(status.splitlines()) == [".", "email\t4\t0\t0", "resize\t2\t0\t0"]


async def test_table_from_before_retries_gets_the_new_columns(tmp_path: Path) -> None:
    """A queue written by an earlier geartrain (no handle, attempts, outcomes) keeps its jobs."""
    with sqlite3.connect(tmp_path / "q.db") as conn:
        conn.execute(
            "CREATE TABLE gearman_queue (id INTEGER PRIMARY KEY, unique_key TEXT,"
            " function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER)"
        )
        conn.execute("INSERT INTO gearman_queue VALUES (4, 'u', 'f', 1, X'00', 0)")
    store = SqliteStore(tmp_path / "q.db")
    await store.open()
    try:
        assert await store.load() == [StoredJob(4, b"f", b"u", b"\0", 1, 0)]
        retry = StoredJob(5, b"f", b"v", b"", 1, 9, b"H:x:5", 1, "[]", "attempts=2")
        await store.write([retry], [])
        assert (await store.load())[1] == retry
        assert await store.load_failed() == []
    finally:
        await store.close()


async def test_table_from_before_submission_policies_gets_their_column(tmp_path: Path) -> None:
    """A queue of the version before (retry columns, no retry_policy) keeps its jobs,
    which have no policy of their own."""
    with sqlite3.connect(tmp_path / "q.db") as conn:
        conn.execute(
            "CREATE TABLE gearman_queue (id INTEGER PRIMARY KEY, unique_key TEXT,"
            " function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER,"
            " handle BLOB, attempts INTEGER, outcomes TEXT)"
        )
        conn.execute("INSERT INTO gearman_queue VALUES (4, 'u', 'f', 1, X'00', 0, X'48', 1, '[]')")
    store = SqliteStore(tmp_path / "q.db")
    await store.open()
    try:
        assert await store.load() == [StoredJob(4, b"f", b"u", b"\0", 1, 0, b"H", 1, "[]")]
        kept = StoredJob(5, b"f", b"v", b"", 1, 0, b"H:x:5", 0, "", "attempts=3")
        await store.write([kept], [])
        assert (await store.load())[1] == kept
    finally:
        await store.close()
