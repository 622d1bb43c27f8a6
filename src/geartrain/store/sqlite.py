"""The embedded default queue: one SQLite file in WAL mode.

At the power level the WAL runs with ``synchronous=FULL``: every commit
fsyncs, so every call runs on one dedicated thread and the event loop never
waits on the disk.  At the crash level a change only has to reach the
operating system before it is acknowledged: it is appended to a log file of
our own (``store.journal``, a copy into a mapped file per loop turn) that a
background thread fsyncs once a second; when a log file is full, a checkpoint
moves what it still holds into the table on the store's thread
(``synchronous=NORMAL``), fsyncs the WAL and deletes the file.

A full disk refuses new jobs but never the deletions that shrink the queue
(``store.room``): new jobs must leave a reserve free, which deletions, and
checkpoints that net out the jobs deleted since, may use.  What the store finds
wrong in the background (a failing fsync, a checkpoint that does not fit, no
room left) it reports through :meth:`SqliteStore.health`; it logs nothing of it
itself: the server decides what to do and says so.

One server per file: the store holds an exclusive lock on ``FILE.lock``
(holding the owner's pid) for as long as it is open, so a second server on
the same file refuses to start instead of replaying the first one's jobs.

Table layout: gearmand's libsqlite3 columns plus ``id INTEGER PRIMARY KEY``,
which gives identity and submission order.  A table written by gearmand (keyed
on ``(unique_key, function_name)``, no id) is converted in place on open; its
rows get ids in the order gearmand would replay them (priority, then rowid).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from . import StoredJob, StoreError, StoreFull, StoreHealth
from .durability import DEFAULT, SYNC_INTERVAL, Durability
from .journal import SEGMENT_BYTES, Generation, Journal, net
from .names import SQLITE_TABLE, check_identifier
from .records import FAILED_COLUMNS, FailedJob, KeptResult, failed_record, failed_row
from .room import RESERVE_BYTES, check_room, disk_full, failure, free_bytes

__all__ = ["DEFAULT_TABLE", "SqliteStore"]

log = logging.getLogger(__name__)

DEFAULT_TABLE = SQLITE_TABLE
"""gearmand's ``--libsqlite3-table`` default."""

_T = TypeVar("_T")

# gearmand's columns, then ours.  Function and unique are written as TEXT when
# they are UTF-8 (as gearmand writes them) and as BLOB otherwise.
_COLUMNS = (
    "id INTEGER PRIMARY KEY, unique_key TEXT, function_name TEXT,"
    " priority INTEGER, data BLOB, when_to_run INTEGER"
)


# Kept with each job since retries (added to older tables on open).
_RETRY_COLUMNS = (
    ("handle", "BLOB"),
    ("attempts", "INTEGER"),
    ("outcomes", "TEXT"),
    ("retry_policy", "TEXT"),  # a submission's own retry policy (NULL: none)
)

# The table's write-ahead log is checkpointed into the file every this many
# pages (SQLite's default is 1,000) and cut back to that size afterwards: what
# a checkpoint may add to the file stays within the reserve (store.room).
_WAL_PAGES = 256

# On a full disk, deletions go in transactions of this many rows, each of whose
# pages fits in the reserve.
_DELETE_CHUNK = 100

# What a row costs the table beside its payload, roughly.
_ROW_BYTES = 100

# Jobs go to the table a few dozen rows to a statement.  ``executemany`` runs one
# statement per row and the sqlite3 module lets go of the interpreter lock around
# each, so the store's thread and a busy event loop passed the lock back and forth
# once per row: a checkpoint of 67,739 queued jobs under row 3e's load took 1.4 s
# (0.35 s in statements of 3,000 rows).  But binding a statement's values holds the
# lock, and statements of 3,000 rows cut a pipelined million's submissions from
# 199,000 jobs/s to 145,000; at 32 rows row 3e gains as much (35-40,000 -> 43,000
# jobs/s) and the million keeps its rate.  A statement also binds at most this many
# payload bytes, or one row's (SQLite copies them when they are bound).
_STATEMENT_VARIABLES = 320
_STATEMENT_BYTES = 4 << 20

_JOB_FIELDS = (
    "id, unique_key, function_name, priority, data, when_to_run,"
    " handle, attempts, outcomes, retry_policy"
)
_JOB_WIDTH = _JOB_FIELDS.count(",") + 1
_JOB_ROW = "(" + ", ".join("?" * _JOB_WIDTH) + ")"  # one row's placeholders

CHECKPOINT_DELAY = 2.0
"""Seconds a sealed log file waits for its jobs to end before its checkpoint.  Under
row 3e's load (80,000 jobs, the first 67,739 in one file) every job ends within it
and none reaches the table: 37,500 jobs/s became 43,800."""

SEALED_LIMIT = 4
"""Sealed log files that start a checkpoint at once, however young."""

ROOMY_BYTES = 16 * SEGMENT_BYTES
"""Spare room on the disk below which a checkpoint starts at once."""

_LOOK_AGAIN = 0.1  # seconds between looks at a waiting checkpoint's conditions

# The failed-job set, beside the queue table.
_FAILED_COLUMNS = (
    "handle BLOB PRIMARY KEY, function_name BLOB, unique_key BLOB, data BLOB,"
    " priority INTEGER, attempts INTEGER, failed_at REAL, reason TEXT, outcomes TEXT"
)


# The kept results of background jobs, beside the queue table.
_RESULT_COLUMNS = (
    "handle BLOB PRIMARY KEY, function_name BLOB, status TEXT, data BLOB, keep_seconds REAL,"
    " ended_at REAL"
)


def _text(value: bytes) -> str | bytes:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value


class SqliteStore:
    """A queue in a SQLite file.

    Args:
        path: the database file; missing parent directories are created.
        table: the table name (gearmand's ``--libsqlite3-table``).
        busy_timeout: seconds to wait for another process's lock.
        durability: ``crash`` (NORMAL, background fsync) or ``power`` (FULL).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        table: str = DEFAULT_TABLE,
        busy_timeout: float = 5.0,
        *,
        durability: Durability = DEFAULT,
    ) -> None:
        self.path = Path(path)
        self.table = check_identifier(table)
        self.busy_timeout = busy_timeout
        self.durability = durability
        self.failed_table = f"{self.table}_failed"
        self.paused_table = f"{self.table}_paused"
        self.results_table = f"{self.table}_results"
        self._conn: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._lock_fd: int | None = None
        self._syncer: _Syncer | None = None
        self._wal = f"{self.path}-wal"
        # The crash level's log, and the task that checkpoints it into the table.
        self._journal: Journal | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._checkpointing: asyncio.Future[bool] | None = None
        self._trouble: StoreError | None = None  # why the last checkpoint failed
        self._page_size = 4096
        self._reusable = 0  # bytes of free pages in the file (as of the last write)
        self.checkpoint_delay = CHECKPOINT_DELAY

    def __str__(self) -> str:
        return f"sqlite {self.path} table {self.table}"

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        if self._thread is None:
            raise StoreError(f"{self}: not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            raise failure(str(self), exc) from exc

    async def open(self) -> None:
        """Open (or create) the file and table, converting a gearmand table."""
        if self._thread is not None:
            return
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="geartrain-sqlite")
        try:
            await self._run(self._open)
        except BaseException:
            await self.close()
            raise

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = _lock(Path(f"{self.path}.lock"), self.path)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        self._conn = conn
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self}: cannot switch to WAL (journal_mode is {mode})")
        # FULL: the WAL is fsynced at every commit, so a committed job survives
        # power loss.  NORMAL: a commit survives a crash of this process, and
        # the syncer bounds what a power cut can take.
        power = self.durability is Durability.POWER
        conn.execute(f"PRAGMA synchronous={'FULL' if power else 'NORMAL'}")
        conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_PAGES}")
        self._page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute(f"PRAGMA journal_size_limit={_WAL_PAGES * self._page_size}")
        self._prepare_table(conn)
        self._count_free_pages(conn)
        if not power:
            # What a crash left in the log is read back; load() checkpoints it.
            journal = Journal(self.path)
            self._syncer = _Syncer(journal.touched)
            records = journal.recover()
            if records:
                log.warning("%s: %d record(s) of the queue log to replay", self, records)
            self._journal = journal

    def _prepare_table(self, conn: sqlite3.Connection) -> None:
        columns = {row[1].lower() for row in conn.execute(f"PRAGMA table_info({self.table})")}
        if not columns:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} ({_COLUMNS})")
            log.info("%s: created the table", self)
        elif "id" not in columns:
            self._convert_gearmand_table(conn, "when_to_run" in columns)
        elif not {"unique_key", "function_name", "priority", "data"} <= columns:
            raise StoreError(f"{self}: the table exists but is not a job queue")
        self._prepare_failures(conn)

    def _prepare_failures(self, conn: sqlite3.Connection) -> None:
        """Add the retry columns to a queue table that lacks them; create the failed set."""
        columns = {row[1].lower() for row in conn.execute(f"PRAGMA table_info({self.table})")}
        for name, kind in _RETRY_COLUMNS:
            if name not in columns:
                conn.execute(f"ALTER TABLE {self.table} ADD COLUMN {name} {kind}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {self.failed_table} ({_FAILED_COLUMNS})")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.paused_table} (function_name BLOB PRIMARY KEY)"
        )
        conn.execute(f"CREATE TABLE IF NOT EXISTS {self.results_table} ({_RESULT_COLUMNS})")

    def _convert_gearmand_table(self, conn: sqlite3.Connection, has_when: bool) -> None:
        """Rebuild a gearmand table with an id column, in one transaction."""
        new = f"{self.table}__geartrain_new"
        when = "when_to_run" if has_when else "0"  # gearmand before 0.41 had no epoch column
        with _immediate(conn):
            conn.execute(f"DROP TABLE IF EXISTS {new}")
            conn.execute(f"CREATE TABLE {new} ({_COLUMNS})")
            # gearmand replays in row order; priority first keeps high jobs ahead.
            # gearmand writes an empty payload as NULL and then refuses to replay
            # it; an empty BLOB keeps the table readable by gearmand too.
            conn.execute(
                f"INSERT INTO {new} (id, unique_key, function_name, priority, data, when_to_run)"
                f" SELECT row_number() OVER (ORDER BY priority, rowid), coalesce(unique_key, ''),"
                f" coalesce(function_name, ''), coalesce(priority, 1), coalesce(data, X''),"
                f" coalesce({when}, 0) FROM {self.table}"
            )
            count = conn.execute(f"SELECT count(*) FROM {new}").fetchone()[0]
            conn.execute(f"DROP TABLE {self.table}")
            conn.execute(f"ALTER TABLE {new} RENAME TO {self.table}")
        log.warning("%s: converted gearmand's table (%d jobs) to geartrain's layout", self, count)

    async def load(self) -> list[StoredJob]:
        """Every stored job in ascending id order (the log checkpointed first).

        A log that does not fit in the table (a full disk) is read from its files
        instead, and checkpointed once there is room."""
        journal = self._journal
        if journal is not None and not await self._checkpoint(journal):
            log.warning("%s: the queue log stays in its files for now: %s", self, self._trouble)
            self._checkpoint_soon()
        jobs = await self._run(self._load)
        if journal is None or not journal.filled:
            return jobs
        added, done = net(journal.filled)
        by_id = {job.id: job for job in jobs}
        for job_id in done:
            by_id.pop(job_id, None)
        by_id.update((job.id, job) for job in added)
        return sorted(by_id.values())

    def _load(self) -> list[StoredJob]:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT id, CAST(function_name AS BLOB), CAST(unique_key AS BLOB),"
            f" CAST(data AS BLOB), priority, when_to_run, handle, attempts, outcomes, retry_policy"
            f" FROM {self.table} ORDER BY id"
        )
        return [
            StoredJob(
                i,
                f or b"",
                u or b"",
                d or b"",
                1 if p is None else p,
                w or 0,
                h or b"",
                a or 0,
                o or "",
                r or "",
            )
            for i, f, u, d, p, w, h, a, o, r in rows
        ]

    @property
    def journaled(self) -> bool:
        """Whether :meth:`append` acknowledges (the crash level)."""
        return self._journal is not None

    async def write(self, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        """Insert ``added`` and delete ``done`` in one transaction (fsynced at the power
        level); at the crash level, :meth:`append` them to the log."""
        if not added and not done:
            return
        if self._journal is not None:
            self.append(added, done)
        elif added:
            await self._run(self._write_jobs, added, done)
        else:
            await self._run(self._delete, done)

    def _write_jobs(self, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        self._check_room(_stored_bytes(added), "new jobs")
        self._write(added, done)

    def _check_room(self, size: int, what: str) -> None:
        """Raise StoreFull unless ``size`` bytes of rows fit twice (in the WAL, then in
        the file), free pages in the file counting as room."""
        check_room(self.path.parent, 2 * size, what, self._reusable)

    def _count_free_pages(self, conn: sqlite3.Connection) -> None:
        self._reusable = conn.execute("PRAGMA freelist_count").fetchone()[0] * self._page_size

    def append(self, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        """Crash level: put the changes in the log now, on the event loop (a copy into
        the mapped file); the table gets them at a checkpoint.  Raises StoreError."""
        journal = self._journal
        if journal is None:
            raise StoreError(f"{self}: not open")
        journal.append(added, done)
        if journal.filled:
            self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        if self._checkpointer is None:
            self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoints())

    async def _checkpoints(self) -> None:
        """Apply the sealed log files; after a failure, try again each second."""
        journal = self._journal
        try:
            while journal is not None and journal.filled:
                await self._let_jobs_end(journal)
                # Shielded: a stop waits for a checkpoint under way rather than
                # applying the same generation again behind it.
                self._checkpointing = asyncio.ensure_future(self._apply_filled(journal))
                if not await asyncio.shield(self._checkpointing):
                    await asyncio.sleep(SYNC_INTERVAL)
        finally:
            self._checkpointer = None

    async def _let_jobs_end(self, journal: Journal) -> None:
        """Give the jobs of a sealed log file :attr:`checkpoint_delay` seconds to end
        before its checkpoint: a job that ends by then never reaches the table, so a
        burst served within seconds costs the table nothing.  No waiting once
        :data:`SEALED_LIMIT` files wait (a crash replays them all), or where the disk
        has little room to spare for them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.checkpoint_delay
        while (
            len(journal.filled) < SEALED_LIMIT
            and loop.time() < deadline
            and _roomy(journal.directory)
        ):
            await asyncio.sleep(min(_LOOK_AGAIN, deadline - loop.time()))

    async def _apply_filled(self, journal: Journal) -> bool:
        """Every sealed log file into the table at once, netted against the deletions
        logged since: draining the queue never asks the table for room."""
        filled = journal.filled[:]
        if not filled:
            return True
        since = journal.current.done if journal.current is not None else []
        try:
            await self._run(self._apply, filled, since, len(since))
        except StoreError as exc:
            self._trouble = exc  # the files keep the jobs; the next attempt applies them
            return False
        self._trouble = None
        del journal.filled[: len(filled)]
        return True

    async def _checkpoint(self, journal: Journal) -> bool:
        """Everything in the log into the table now (to load it, or at a stop)."""
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        journal.seal()
        return await self._apply_filled(journal)

    def _apply(self, filled: list[Generation], since: list[int], count: int) -> None:
        """Sealed generations into the table, fsynced, then their files deleted.  The
        first ``count`` deletions of the current generation (``since``, which the
        event loop may be appending to) apply too."""
        # ``added`` reads the files on each pass (journal.Generation says why): one
        # pass sizes the jobs, the next writes them a statement at a time.
        added, done = net(filled, since[:count])
        self._delete(done)
        size = _stored_bytes(added)
        if size:
            self._check_room(size, "the queue log's checkpoint")
            self._write(added, (), replace=True)
        if self._syncer is not None and not self._syncer.sync(self._wal):
            raise OSError(f"fsync of {self._wal} failed: {self._syncer.error}")
        for generation in filled:
            generation.path.unlink(missing_ok=True)

    def _delete(self, ids: Sequence[int]) -> None:
        """Delete rows in one transaction; on a full disk, in small ones that fit."""
        try:
            self._write((), ids)
        except sqlite3.Error as exc:
            if not disk_full(exc):
                raise
            for at in range(0, len(ids), _DELETE_CHUNK):
                self._write((), ids[at : at + _DELETE_CHUNK])

    def health(self) -> StoreHealth:
        """What is wrong in the background now: a failing fsync, a checkpoint that
        failed (for want of room, only once the log has none left either), or no room
        for new jobs (checked on the disk only when the log has none left)."""
        syncer = self._syncer
        problem = None if isinstance(self._trouble, StoreFull) else self._trouble
        if syncer is not None and syncer.unsynced:
            problem = StoreError(f"{self}: background fsync failed: {syncer.error}")
        if problem is None and self._thread is not None:
            try:
                self.check_room()
            except StoreError as exc:
                problem = exc
            except OSError as exc:
                problem = failure(str(self), exc)
        if syncer is None:
            return StoreHealth(problem, 0, 0)
        return StoreHealth(problem, syncer.failures, syncer.unsynced)

    def check_room(self) -> None:
        """Raise StoreFull unless a new job would find room now."""
        if self._journal is not None:
            self._journal.check_room()
        else:
            check_room(self.path.parent, 0, "new jobs", self._reusable)

    def _write(
        self, added: Iterable[StoredJob], done: Sequence[int], *, replace: bool = False
    ) -> None:
        conn = self._conn
        assert conn is not None
        with _immediate(conn):
            # A replayed log may hold jobs a checkpoint had already written.
            verb = "INSERT OR REPLACE" if replace else "INSERT"
            for batch in _batches(added, _data_size):
                conn.execute(
                    f"{verb} INTO {self.table} ({_JOB_FIELDS}) VALUES "
                    + ", ".join([_JOB_ROW] * len(batch)),
                    [value for j in batch for value in _row(j)],
                )
            for at in range(0, len(done), _STATEMENT_VARIABLES):
                ids = done[at : at + _STATEMENT_VARIABLES]
                marks = ", ".join("?" * len(ids))
                conn.execute(f"DELETE FROM {self.table} WHERE id IN ({marks})", ids)
        self._count_free_pages(conn)

    async def load_failed(self) -> list[FailedJob]:
        """The failed-job set, oldest first."""
        return await self._run(self._load_failed)

    def _load_failed(self) -> list[FailedJob]:
        assert self._conn is not None
        rows = self._conn.execute(
            f"SELECT {FAILED_COLUMNS} FROM {self.failed_table} ORDER BY failed_at, rowid"
        )
        return [failed_record(row) for row in rows]

    async def write_failed(self, added: Sequence[FailedJob], removed: Sequence[bytes]) -> None:
        """Store ``added`` (replacing records of the same handle) and delete ``removed``."""
        if added or removed:
            await self._run(self._write_failed, added, removed)

    def _write_failed(self, added: Sequence[FailedJob], removed: Sequence[bytes]) -> None:
        conn = self._conn
        assert conn is not None
        with _immediate(conn):
            conn.executemany(
                f"DELETE FROM {self.failed_table} WHERE handle = ?", [(h,) for h in removed]
            )
            conn.executemany(
                f"INSERT OR REPLACE INTO {self.failed_table} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [failed_row(r) for r in added],
            )
        if self._syncer is not None:
            self._syncer.touched.add(self._wal)

    async def check(self) -> None:
        """Nothing to ask: a local file's trouble shows in :meth:`health`."""

    async def load_paused(self) -> list[bytes]:
        """The paused function names."""
        return await self._run(self._load_paused)

    def _load_paused(self) -> list[bytes]:
        assert self._conn is not None
        rows = self._conn.execute(f"SELECT function_name FROM {self.paused_table} ORDER BY 1")
        return [bytes(name) for (name,) in rows]

    async def save_paused(self, name: bytes, paused: bool) -> None:
        """Keep ``name`` paused or not (a row in its own table, written at once)."""
        await self._run(self._save_paused, name, paused)

    def _save_paused(self, name: bytes, paused: bool) -> None:
        conn = self._conn
        assert conn is not None
        if paused:
            conn.execute(f"INSERT OR IGNORE INTO {self.paused_table} VALUES (?)", (name,))
        else:
            conn.execute(f"DELETE FROM {self.paused_table} WHERE function_name = ?", (name,))
        if self._syncer is not None:
            self._syncer.touched.add(self._wal)

    async def load_results(self) -> list[KeptResult]:
        """The kept results, oldest first."""
        return await self._run(self._load_results)

    def _load_results(self) -> list[KeptResult]:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT handle, function_name, status, data, keep_seconds, ended_at"
            f" FROM {self.results_table} ORDER BY rowid"
        )
        return [KeptResult(bytes(h), bytes(f), s, bytes(d), k, e) for h, f, s, d, k, e in rows]

    async def write_results(self, added: Sequence[KeptResult], removed: Sequence[bytes]) -> None:
        """Store ``added`` (replacing records of the same handle) and delete ``removed``."""
        if added or removed:
            await self._run(self._write_results, added, removed)

    def _write_results(self, added: Sequence[KeptResult], removed: Sequence[bytes]) -> None:
        conn = self._conn
        assert conn is not None
        with _immediate(conn):
            conn.executemany(
                f"DELETE FROM {self.results_table} WHERE handle = ?", [(h,) for h in removed]
            )
            # A replaced record goes to the end: the order is the order of keeping.
            conn.executemany(
                f"DELETE FROM {self.results_table} WHERE handle = ?", [(r.handle,) for r in added]
            )
            conn.executemany(f"INSERT INTO {self.results_table} VALUES (?, ?, ?, ?, ?, ?)", added)
        if self._syncer is not None:
            self._syncer.touched.add(self._wal)

    async def _close_journal(self, journal: Journal) -> None:
        """A clean stop leaves the queue in the table alone, as gearmand's tools expect
        (unless the table has no room for it: then the log stays for the next start)."""
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.cancel()
        try:
            if not await self._checkpoint(journal):
                log.warning("%s: the queue log stays in its files: %s", self, self._trouble)
        finally:
            journal.close()

    async def close(self) -> None:
        """Close the file and stop the thread; safe to call twice."""
        if self._thread is None:
            return
        journal, self._journal = self._journal, None
        if journal is not None:
            await self._close_journal(journal)
        thread, self._thread = self._thread, None
        conn, self._conn = self._conn, None
        syncer, self._syncer = self._syncer, None
        if syncer is not None:
            syncer.stop()
        if conn is not None:
            try:
                # The last connection's close checkpoints and syncs the WAL.
                await asyncio.get_running_loop().run_in_executor(thread, conn.close)
            except sqlite3.Error as exc:
                log.warning("%s: close: %s", self, exc)
        thread.shutdown(wait=False)
        lock_fd, self._lock_fd = self._lock_fd, None
        if lock_fd is not None:
            os.close(lock_fd)


def _lock(lock_path: Path, path: Path) -> int:
    """Take the queue file's lock for this process, or say who holds it.

    flock is released by the kernel when the process dies, however it dies, so
    a stale lock file never keeps a server from starting.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(
            f"{path} is in use by another server (pid {holder}); give each server its own file"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    line = f"{os.getpid()}\n".encode()
    try:
        # Over the old pid, then cut: a full disk has no block for a new one.
        os.pwrite(fd, line, 0)
        os.ftruncate(fd, len(line))
    except OSError:
        pass  # the lock is what counts; the pid only names its holder
    return fd


class _Syncer:
    """Fsyncs the files written since the last beat (the log, the WAL, the directory
    of a new log file) every SYNC_INTERVAL seconds, and counts what failed.

    Its own thread, so neither the event loop nor the store's thread ever waits
    for the disk.  fsync of another descriptor of the same file flushes what
    was written through the connection or the mapping (the page cache is the
    file's, not the descriptor's).  ``touched`` is shared with the writers: a
    set's add and pop are atomic.
    """

    def __init__(self, touched: set[str]) -> None:
        self.touched = touched
        self.failures = 0  # fsyncs that failed (a counter, for metrics)
        self.unsynced = 0  # beats in a row that failed (0 once one succeeds)
        self.error = ""  # the last failure
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="geartrain-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SYNC_INTERVAL):
            failed = []
            while self.touched:
                try:
                    name = self.touched.pop()
                except KeyError:
                    break
                if not self.sync(name):
                    failed.append(name)
            self.touched.update(failed)  # tried again at the next beat
            self.unsynced = self.unsynced + 1 if failed else 0

    def sync(self, name: str) -> bool:
        """Fsync one file or directory now (from any thread); False if that failed.
        A file gone since needs nothing: a checkpoint removed it."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        except OSError as exc:
            return self._failed(name, exc)
        try:
            os.fsync(fd)
        except OSError as exc:
            return self._failed(name, exc)
        finally:
            os.close(fd)
        return True

    def _failed(self, name: str, exc: OSError) -> bool:
        self.failures += 1
        self.error = f"{name}: {exc.strerror or exc}"
        return False

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _roomy(directory: Path) -> bool:
    """Whether the disk has :data:`ROOMY_BYTES` to spare beyond the reserve."""
    try:
        return free_bytes(directory) - RESERVE_BYTES >= ROOMY_BYTES
    except OSError:
        return False  # the checkpoint goes ahead, and reports its own trouble


def _row(j: StoredJob) -> tuple[object, ...]:
    """A job's values in the order of :data:`_JOB_FIELDS`."""
    return (
        j.id,
        _text(j.unique),
        _text(j.function),
        j.priority,
        j.data,
        j.when,
        j.handle,
        j.failures,
        j.outcomes,
        j.retry or None,
    )


def _data_size(job: StoredJob) -> int:
    return len(job.data)


def _stored_bytes(jobs: Iterable[StoredJob]) -> int:
    """What ``jobs`` take in the table, about: their data and a row's overhead each."""
    return sum(len(job.data) + _ROW_BYTES for job in jobs)


def _batches(items: Iterable[_T], size: Callable[[_T], int]) -> Iterator[list[_T]]:
    """``items`` in runs of at most :data:`_STATEMENT_VARIABLES` values (as job rows)
    and :data:`_STATEMENT_BYTES` of payload (``size``), unless one alone has more;
    taken from ``items`` a run at a time."""
    most = _STATEMENT_VARIABLES // _JOB_WIDTH
    batch: list[_T] = []
    held = 0
    for item in items:
        bytes_ = size(item)
        if batch and (len(batch) == most or held + bytes_ > _STATEMENT_BYTES):
            yield batch
            batch, held = [], 0
        batch.append(item)
        held += bytes_
    if batch:
        yield batch


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, holding the write lock from its start (BEGIN
    IMMEDIATE), rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
