"""The store writer on a manual clock, over a real SQLite queue: what it keeps at
once, what waits and for how long, and how a full disk is refused and recovered."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from geartrain.server.core import JobServer
from geartrain.server.persistence import DONE_DELAY, HEALTH_INTERVAL, StoreWriter
from geartrain.store import StoredJob
from geartrain.store.durability import Durability
from geartrain.store.sqlite import SqliteStore
from gt_helpers import take_the_rest

from .harness import Clock, Conn, T, make

pytestmark = pytest.mark.timeout(30)


async def writer_on(path: Path, clock: Clock) -> tuple[JobServer, StoreWriter, SqliteStore]:
    """A core whose background jobs the writer keeps in a SQLite queue at ``path``."""
    store = SqliteStore(path)
    await store.open()
    core = make(clock)
    writer = StoreWriter(
        store, core, gather=False, clock=lambda: clock.now, call_later=clock.call_later
    )
    core.keeper = writer
    return core, writer, store


async def stored(path: Path) -> list[StoredJob]:
    store = SqliteStore(path)
    await store.open()
    try:
        return await store.load()
    finally:
        await store.close()


async def test_a_job_is_in_the_log_when_acknowledged_and_its_end_within_the_delay(
    tmp_path: Path, clock: Clock
) -> None:
    core, writer, store = await writer_on(tmp_path / "q.db", clock)
    client, worker = Conn(core, "c"), Conn(core, "w")
    handle = client.submit(b"f", b"x", kind=T.SUBMIT_JOB_BG)  # acknowledged in this call...
    assert writer.writes == 1  # ...as its record went into the log
    worker.send(T.CAN_DO, b"f")
    assert worker.grab()[0] == handle  # type: ignore[index]
    worker.send(T.WORK_COMPLETE, handle, b"")
    clock.advance(DONE_DELAY / 2)
    assert writer.writes == 1  # the completion waits for company...
    clock.advance(DONE_DELAY)
    assert writer.writes == 2  # ...not much longer than the delay
    writer.close()
    await store.close()
    assert await stored(tmp_path / "q.db") == []


async def test_a_job_that_ends_before_its_write_reaches_the_store_neither_way(
    tmp_path: Path, clock: Clock
) -> None:
    # At the power level every change waits for a transaction; a foreground job
    # made durable by a background submission may finish before it commits.
    store = SqliteStore(tmp_path / "q.db", durability=Durability.POWER)
    await store.open()
    core = make(clock)
    core.keeper = writer = StoreWriter(
        store, core, clock=lambda: clock.now, call_later=clock.call_later
    )
    client, worker = Conn(core, "c"), Conn(core, "w")
    worker.send(T.CAN_DO, b"f")
    client.send(T.SUBMIT_JOB, b"f", b"u", b"x")
    handle = client.one(T.JOB_CREATED)[0]
    assert worker.grab()[0] == handle  # type: ignore[index]
    client.send(T.SUBMIT_JOB_BG, b"f", b"u", b"x")  # joins it: now it must be kept
    worker.send(T.WORK_COMPLETE, handle, b"")  # and ends before the write
    await writer.drain()
    assert client.received()[0] == (T.JOB_CREATED, (handle,))
    writer.close()
    await store.close()
    assert await stored(tmp_path / "q.db") == []


async def test_restoring_keeps_the_latest_copy_of_a_handle_and_deletes_the_others(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "q.db"
    first = SqliteStore(path)
    await first.open()
    earlier = StoredJob(3, b"f", b"u", b"d", 1, 0, b"H:test:41", 1, "")
    later = StoredJob(4, b"f", b"u", b"d", 1, 0, b"H:test:41", 2, "")  # a retry written anew
    plain = StoredJob(5, b"g", b"", b"e", 1)
    await first.write([earlier, later, plain], [])
    await first.close()
    core, writer, store = await writer_on(path, clock)
    assert writer.restorable(await store.load()) == [later, plain]
    assert writer.next_id == 6  # new jobs' ids go past every stored one
    clock.advance(DONE_DELAY)
    await writer.drain()
    writer.close()
    await store.close()
    assert await stored(path) == [later, plain]


async def test_a_full_disk_refuses_new_jobs_until_it_has_room_again(
    small_disk: Callable[[str], Path], clock: Clock
) -> None:
    disk = small_disk("12m")
    core, writer, store = await writer_on(disk / "q.db", clock)
    client = Conn(core, "c")
    acknowledged = [client.submit(b"f", b"first", kind=T.SUBMIT_JOB_BG)]  # a log file opens
    filler = take_the_rest(disk)  # the log file takes jobs while it has room
    while True:
        client.send(T.SUBMIT_JOB_BG, b"f", b"", b"")  # the smallest record: the log fills up
        await writer.drain()
        [(ptype, args)] = client.received()
        if ptype is T.ERROR:
            break
        acknowledged.append(args[0])
    assert args[0] == b"QUEUE_ERROR" and len(acknowledged) > 1
    clock.advance(HEALTH_INTERVAL)  # the next reading of the store's health
    assert writer.outage and writer.state[0] == "full"
    os.unlink(filler)
    clock.advance(HEALTH_INTERVAL)
    assert not writer.outage and writer.state == ("ok", "")
    after = client.submit(b"f", b"after", kind=T.SUBMIT_JOB_BG)  # acknowledged at once
    writer.close()
    await store.close()
    assert [j.handle for j in await stored(disk / "q.db")] == [*acknowledged, after]
