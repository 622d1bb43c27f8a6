"""The crash level's log in front of the SQLite table (geartrain.store.journal).

What a crash can leave: log files with complete records, a last record cut
short by a kill in write() or garbled by a power cut, and files already
applied to the table.  Each is replayed into the table at open, in order,
without losing or resurrecting a job.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from pathlib import Path

import pytest

from geartrain.store import StoredJob
from geartrain.store.journal import SEGMENT_BYTES, Journal, net, read_generation
from geartrain.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(60)


def job(i: int, **kw: object) -> StoredJob:
    fields: dict[str, object] = {
        "function": b"f\xff",
        "unique": b"u%d" % i,
        "data": b"\0data %d" % i,
        "priority": i % 3,
        "when": 4_102_444_800 if i % 2 else 0,
        "handle": b"H:host:%d" % i,
        "failures": i % 4,
        "outcomes": '[["fail","",""]]' if i % 2 else "",
    }
    fields.update(kw)
    return StoredJob(i, **fields)  # type: ignore[arg-type]


def logs(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("q.db.pending-*"))


async def crash(store: SqliteStore) -> None:
    """Let go of the store as a killed process would: no checkpoint, logs left as they are."""
    journal, store._journal = store._journal, None
    assert journal is not None
    journal.close()
    await store.close()


def test_records_read_back_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "q.db")
    journal.append([job(1), job(2, data=bytes(range(256)) * 400)], [])
    journal.append([job(3)], [1, 99])
    journal.append([], [3])
    journal.close()
    [path] = logs(tmp_path)
    assert list(read_generation(path)) == [
        ([job(1), job(2, data=bytes(range(256)) * 400)], []),
        ([job(3)], [1, 99]),
        ([], [3]),
    ]


def test_a_submissions_retry_policy_reads_back_beside_jobs_without_one(tmp_path: Path) -> None:
    words = "attempts=4;on=fail;backoff=2.0;cap=3600.0;jitter=0.0"
    journal = Journal(tmp_path / "q.db")
    journal.append([job(1, retry=words)], [])  # a submission alone (the acknowledgement's path)
    journal.append([job(2), job(3, retry=words, priority=2), job(4)], [1])
    journal.close()
    [path] = logs(tmp_path)
    assert list(read_generation(path)) == [
        ([job(1, retry=words)], []),
        ([job(2), job(3, retry=words, priority=2), job(4)], [1]),
    ]


def used(path: Path) -> bytes:
    """The written part of a log file (the rest is zeros)."""
    return path.read_bytes().rstrip(b"\0")


@pytest.mark.parametrize("damage", ["cut short", "garbled", "a header only"])
def test_replay_stops_at_a_damaged_last_record(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(tmp_path / "q.db")
    journal.append([job(1)], [])
    journal.append([job(2)], [])
    journal.close()
    [path] = logs(tmp_path)
    raw = bytearray(path.read_bytes())
    end = len(used(path))
    if damage == "cut short":  # the copy of the second record stopped half way
        raw[end - 20 : end] = bytes(20)
    elif damage == "garbled":
        raw[end - 3 : end] = b"\xff\xfe\xfd"
    else:  # a length and CRC with nothing behind them
        raw[end : end + 8] = b"\0\0\0\x05\0\0\0\x01"
    path.write_bytes(raw)
    read = list(read_generation(path))
    assert read[0] == ([job(1)], [])
    assert len(read) == (2 if damage == "a header only" else 1)
    assert "damaged last record" in caplog.text


def test_a_full_file_is_followed_by_a_new_one(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "q.db")
    big = job(1, data=b"x" * (SEGMENT_BYTES // 3))
    for i in range(1, 4):
        journal.append([big._replace(id=i)], [])
    journal.append([job(9, data=b"y" * (SEGMENT_BYTES + 1))], [1])  # bigger than a file
    journal.close()
    files = logs(tmp_path)
    assert len(files) == 3 and len(journal.filled) == 2
    assert [len(list(read_generation(f))) for f in files] == [2, 1, 1]
    again = Journal(tmp_path / "q.db")
    assert again.recover() == 4
    added, done = net(again.filled)
    assert sorted(job.id for job in added) == [2, 3, 9] and done == [1]


def test_a_file_waiting_for_its_checkpoint_keeps_ids_and_reads_jobs_back(
    tmp_path: Path,
) -> None:
    # Holding each job until the checkpoint, seconds later, and freeing them all then
    # left the server's heap scattered with their space (170 bytes per queued job).
    journal = Journal(tmp_path / "q.db")
    data = bytes(range(256)) * 4
    journal.append([job(1, data=data), job(2)], [])
    journal.append([job(3)], [2])
    journal.seal()
    [generation] = journal.filled
    assert generation.added == {1, 3} and generation.done == []
    assert not [holder for holder in gc.get_referrers(data) if isinstance(holder, tuple)]
    added, done = net(journal.filled, [3])
    assert list(added) == [job(1, data=data)] and done == [3]
    assert list(added) == [job(1, data=data)]  # read again for each pass
    journal.close()


async def test_a_crash_leaves_logs_that_the_next_open_replays(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SqliteStore(path)
    await store.open()
    store.append([job(1), job(2), job(3)], [])
    store.append([job(4)], [2])
    await crash(store)
    assert logs(tmp_path)
    again = SqliteStore(path)
    await again.open()
    try:
        assert await again.load() == [job(1), job(3), job(4)]
        assert not logs(tmp_path)  # replayed files are gone; the next record starts one
    finally:
        await again.close()
    assert not logs(tmp_path)


async def test_replaying_files_already_applied_changes_nothing(tmp_path: Path) -> None:
    """A crash between a checkpoint's commit and its deletion of the files."""
    path = tmp_path / "q.db"
    store = SqliteStore(path)
    await store.open()
    store.append([job(1), job(2)], [])
    assert store._journal is not None
    store._journal.seal()
    [first] = store._journal.filled
    await store._run(store._write, list(first.jobs()), first.done)  # applied, kept
    store.append([job(3)], [1])
    await crash(store)
    assert len(logs(tmp_path)) == 2
    again = SqliteStore(path)
    await again.open()
    try:
        assert await again.load() == [job(2), job(3)]
    finally:
        await again.close()


async def test_a_checkpoint_moves_the_log_into_the_table(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    store = SqliteStore(path)
    await store.open()
    try:
        store.append([job(i) for i in range(1, 101)], [])
        store.append([], list(range(1, 51)))
        assert await store.load() == [job(i) for i in range(51, 101)]
        assert not logs(tmp_path)  # the applied file is gone; the next record starts one
    finally:
        await store.close()
    assert not logs(tmp_path)


@pytest.mark.parametrize("ended", [[1, 2], [1]])
async def test_a_sealed_log_file_waits_for_its_jobs_to_end(
    tmp_path: Path, ended: list[int]
) -> None:
    # Jobs that end within the delay (2 s, on a disk with room) never reach the
    # table; one still queued then does.
    store = SqliteStore(tmp_path / "q.db")
    await store.open()

    def table() -> list[int]:
        with sqlite3.connect(tmp_path / "q.db") as conn:
            return [i for (i,) in conn.execute("SELECT id FROM gearman_queue ORDER BY id")]

    try:
        for i in range(1, 4):  # the third starts a second file: the first is sealed
            store.append([job(i, data=b"x" * (SEGMENT_BYTES // 3))], [])
        assert len(logs(tmp_path)) == 2
        store.append([], ended)
        await asyncio.sleep(0.25)
        assert table() == [] and len(logs(tmp_path)) == 2  # still waiting
        for _ in range(50):
            await asyncio.sleep(0.1)
            if len(logs(tmp_path)) == 1:
                break
        assert len(logs(tmp_path)) == 1  # applied and deleted
        assert table() == sorted({1, 2} - set(ended))
    finally:
        await store.close()


async def test_new_generations_number_past_leftovers(tmp_path: Path) -> None:
    (tmp_path / "q.db.pending-7").write_bytes(b"")
    journal = Journal(tmp_path / "q.db")
    assert journal.recover() == 0
    journal.append([job(1)], [])
    assert journal.current is not None and journal.current.number == 8
    journal.close()
