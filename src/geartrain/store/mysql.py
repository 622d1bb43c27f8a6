"""MySQL / MariaDB queue (asyncmy), gearmand's ``-q mysql``.

A write is one InnoDB transaction: a multi-row INSERT (the driver's
``executemany`` folds the rows into as few statements as the packet size
allows) and ``DELETE ... WHERE id IN (...)``.  How durable a commit is depends
on the server's global ``innodb_flush_log_at_trx_commit`` (no session can
change it): 1 (the default) gives the power level, 2 the crash level (the log
is written to the OS at each commit and flushed once a second), 0 neither.  A
warning is logged when the setting gives less than the level asks for.  A
connection that saw any error is closed rather than reused, and the pool opens
a fresh one, so the store recovers by itself.

asyncmy rather than aiomysql: aiomysql 0.3.2 cannot send bytes parameters
with PyMySQL 1.2.3 or later (aio-libs/aiomysql#1080, unfixed in a release) and
breaks on import with PyMySQL 1.3; asyncmy has no PyMySQL dependency, ships
typed wheels, and is maintained.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncmy

from . import StoredJob, StoreError
from .durability import DEFAULT, Durability
from .names import MYSQL_TABLE, check_identifier
from .reconnect import driver_error, once_more_if_lost
from .records import FAILED_COLUMNS, FailedJob, KeptResult, failed_record, failed_row

__all__ = ["DEFAULT_TABLE", "MysqlStore"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_TABLE = MYSQL_TABLE
"""gearmand's ``--mysql-table`` default."""

_ERRORS = (asyncmy.errors.MySQLError, OSError, TimeoutError, asyncio.IncompleteReadError)
_DELETE_CHUNK = 1000

# Client and server error codes that mean the session is gone: server has gone
# away, lost connection during query, connection killed (MariaDB), disconnected
# for inactivity (MySQL 8).
_LOST_CODES = {2006, 2013, 1927, 4031}


def _lost(exc: Exception) -> bool:
    if isinstance(exc, ConnectionError | asyncio.IncompleteReadError):
        return True
    code = exc.args[0] if isinstance(exc, asyncmy.errors.MySQLError) and exc.args else None
    return code in _LOST_CODES


_CREATE = (
    "CREATE TABLE IF NOT EXISTS {table} (id BIGINT NOT NULL PRIMARY KEY,"
    " unique_key BLOB NOT NULL, function_name BLOB NOT NULL, priority INT NOT NULL,"
    " data LONGBLOB NOT NULL, when_to_run BIGINT NOT NULL) ENGINE=InnoDB"
)


# Kept with each job since retries (added to older tables on open).
_RETRY_COLUMNS = (
    ("handle", "VARBINARY(64) NOT NULL DEFAULT ''"),
    ("attempts", "INT NOT NULL DEFAULT 0"),
    ("outcomes", "MEDIUMTEXT NULL"),
    ("retry_policy", "TEXT NULL"),  # a submission's own retry policy (NULL: none)
)
_CREATE_FAILED = (
    "CREATE TABLE IF NOT EXISTS {table} (handle VARBINARY(64) NOT NULL PRIMARY KEY,"
    " function_name BLOB NOT NULL, unique_key BLOB NOT NULL, data LONGBLOB NOT NULL,"
    " priority INT NOT NULL, attempts INT NOT NULL, failed_at DOUBLE NOT NULL,"
    " reason TEXT NOT NULL, outcomes MEDIUMTEXT NOT NULL) ENGINE=InnoDB"
)

_CREATE_RESULTS = (
    "CREATE TABLE IF NOT EXISTS {table} (seq BIGINT NOT NULL AUTO_INCREMENT UNIQUE,"
    " handle VARBINARY(64) NOT NULL PRIMARY KEY, function_name BLOB NOT NULL,"
    " status VARCHAR(32) NOT NULL, data LONGBLOB NOT NULL, keep_seconds DOUBLE NOT NULL,"
    " ended_at DOUBLE NOT NULL) ENGINE=InnoDB"
)


class MysqlStore:
    """A queue in a MySQL or MariaDB table.

    Args:
        host, port, user, password, db: where to connect (gearmand's
            ``--mysql-host`` etc.; the host is reached over TCP).
        table: the table name (``--mysql-table``).
        timeout: seconds allowed for each write or load.
        connect_timeout: seconds allowed to connect.
        durability: the level to check the server's settings against.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 3306,
        user: str = "",
        password: str = "",
        db: str = "",
        table: str = DEFAULT_TABLE,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        durability: Durability = DEFAULT,
    ) -> None:
        self.durability = durability
        self.connect_args: dict[str, Any] = {
            "host": host,
            "port": port,
            "user": user or None,
            "password": password,
            "db": db or None,
        }
        self.table = check_identifier(table)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._pool: Any = None
        self._insert = (
            f"INSERT INTO {self.table}"
            " (id, function_name, unique_key, data, priority, when_to_run,"
            " handle, attempts, outcomes, retry_policy)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        )
        self.failed_table = f"{self.table[:50]}_failed"
        self.paused_table = f"{self.table[:50]}_paused"
        self.results_table = f"{self.table[:50]}_results"

    def __str__(self) -> str:
        a = self.connect_args
        return f"mysql {a['user'] or ''}@{a['host']}:{a['port']}/{a['db'] or ''} table {self.table}"

    async def open(self) -> None:
        """Connect and create (or convert) the table."""
        if self._pool is not None:
            return
        try:
            self._pool = await asyncmy.create_pool(
                minsize=1,
                maxsize=2,
                autocommit=False,
                charset="utf8mb4",
                binary_prefix=True,  # bytes as _binary'...', never read as utf8mb4 text
                max_allowed_packet=1 << 30,  # the server's own limit is the one that counts
                connect_timeout=self.connect_timeout,
                **self.connect_args,
            )
            await self._transaction(self._prepare_table)
        except _ERRORS as exc:
            await self.close()
            raise driver_error(self, exc) from exc

    async def _transaction(self, body: Any, *args: Any) -> Any:
        """Run ``body(cursor, *args)`` and commit; on any error drop the connection."""
        conn = await self._pool.acquire()
        try:
            async with asyncio.timeout(self.timeout), conn.cursor() as cur:
                result = await body(cur, *args)
                await conn.commit()
                return result
        except BaseException:
            # The server rolls back when the connection goes; a connection in an
            # unknown state is never handed out again.
            conn.close()
            raise
        finally:
            self._pool.release(conn)

    def _open_pool(self) -> Any:
        if self._pool is None:
            raise StoreError(f"{self}: not open")
        return self._pool

    async def _retried(self, body: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """:meth:`_transaction`, once more on a fresh connection if the session was
        lost; its errors as StoreError."""
        self._open_pool()
        try:
            return await once_more_if_lost(lambda: self._transaction(body, *args), _lost, self)
        except _ERRORS as exc:
            raise driver_error(self, exc) from exc

    async def _fetch(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        async def body(cur: Any) -> list[tuple[Any, ...]]:
            await cur.execute(query, args or None)
            return list(await cur.fetchall())

        return await self._retried(body)

    async def _execute(self, query: str, *args: Any) -> None:
        async def body(cur: Any) -> None:
            await cur.execute(query, args or None)

        await self._retried(body)

    async def _prepare_table(self, cur: Any) -> None:
        await cur.execute("SELECT @@innodb_flush_log_at_trx_commit")
        (flush,) = await cur.fetchone()
        if str(flush) == "0":
            log.warning(
                "%s: innodb_flush_log_at_trx_commit=0, so the last second of jobs may be"
                " lost if the database server crashes (1 or 2 keep them)",
                self,
            )
        elif str(flush) != "1" and self.durability is Durability.POWER:
            log.warning(
                "%s: innodb_flush_log_at_trx_commit=%s, so the last second of jobs may be"
                " lost if the database host loses power (1 makes every commit durable)",
                self,
                flush,
            )
        await cur.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND table_name = %s",
            (self.table,),
        )
        columns = {str(row[0]).lower() for row in await cur.fetchall()}
        if not columns:
            await cur.execute(_CREATE.format(table=self.table))
        elif "id" not in columns:
            await self._convert_gearmand_table(cur, "when_to_run" in columns)
        elif not {"unique_key", "function_name", "priority", "data", "when_to_run"} <= columns:
            raise StoreError(f"{self}: the table exists but is not a job queue")
        await self._prepare_failures(cur)

    async def _prepare_failures(self, cur: Any) -> None:
        """Add the retry columns to a queue table that lacks them; create the failed set."""
        await cur.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND table_name = %s",
            (self.table,),
        )
        columns = {str(row[0]).lower() for row in await cur.fetchall()}
        for name, kind in _RETRY_COLUMNS:
            if name not in columns:
                await cur.execute(f"ALTER TABLE {self.table} ADD COLUMN {name} {kind}")
        await cur.execute(_CREATE_FAILED.format(table=self.failed_table))
        await cur.execute(
            f"CREATE TABLE IF NOT EXISTS {self.paused_table}"
            " (function_name VARBINARY(1024) NOT NULL PRIMARY KEY) ENGINE=InnoDB"
        )
        await cur.execute(_CREATE_RESULTS.format(table=self.results_table))

    async def _convert_gearmand_table(self, cur: Any, has_when: bool) -> None:
        """Copy a table written by gearmand's mysql plugin into geartrain's layout.

        MySQL commits every DDL statement, so the copy is built beside the old
        table and swapped in with one atomic RENAME: a crash at any point
        leaves either the old table or the new one in place, never neither.
        """
        t = self.table
        new, old = f"{t[:40]}_geartrain_new", f"{t[:40]}_gearmand_old"
        when = "when_to_run" if has_when else "0"
        await cur.execute(f"SELECT unique_key, function_name, priority, data, {when} FROM {t}")
        # Row order is gearmand's replay order; a stable sort puts priority first.
        rows = sorted(await cur.fetchall(), key=lambda row: 1 if row[2] is None else row[2])
        await cur.execute(f"DROP TABLE IF EXISTS {new}")
        await cur.execute(_CREATE.format(table=new))
        await cur.executemany(
            f"INSERT INTO {new} (id, unique_key, function_name, priority, data, when_to_run)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (i, _bytes(u), _bytes(f), 1 if p is None else p, d or b"", w or 0)
                for i, (u, f, p, d, w) in enumerate(rows, 1)
            ],
        )
        await cur.connection.commit()
        await cur.execute(f"RENAME TABLE {t} TO {old}, {new} TO {t}")
        await cur.execute(f"DROP TABLE {old}")
        log.warning("%s: converted gearmand's table (%d jobs)", self, len(rows))

    async def load(self) -> list[StoredJob]:
        """Every stored job in ascending id order."""
        rows = await self._fetch(
            "SELECT id, function_name, unique_key, data, priority, when_to_run,"
            " handle, attempts, coalesce(outcomes, ''), coalesce(retry_policy, '')"
            f" FROM {self.table} ORDER BY id"
        )
        return [StoredJob(*row) for row in rows]

    async def write(self, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        """Insert ``added`` and delete ``done`` in one committed transaction."""
        self._open_pool()  # not open is an error even with nothing to write
        if added or done:
            await self._retried(self._write, added, done)

    async def _write(self, cur: Any, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        if added:
            await cur.executemany(
                self._insert,
                [
                    (j.id, j.function, j.unique, j.data, j.priority, j.when)
                    + (j.handle, j.failures, j.outcomes, j.retry or None)
                    for j in added
                ],
            )
        for start in range(0, len(done), _DELETE_CHUNK):
            ids = done[start : start + _DELETE_CHUNK]
            marks = ", ".join(["%s"] * len(ids))
            await cur.execute(f"DELETE FROM {self.table} WHERE id IN ({marks})", list(ids))

    async def load_failed(self) -> list[FailedJob]:
        """The failed-job set, oldest first."""
        rows = await self._fetch(
            f"SELECT {FAILED_COLUMNS} FROM {self.failed_table} ORDER BY failed_at"
        )
        return [failed_record(row) for row in rows]

    async def write_failed(self, added: Sequence[FailedJob], removed: Sequence[bytes]) -> None:
        """Store ``added`` (replacing records of the same handle) and delete ``removed``."""
        self._open_pool()

        async def body(cur: Any) -> None:
            for handle in removed:
                await cur.execute(f"DELETE FROM {self.failed_table} WHERE handle = %s", (handle,))
            if added:
                await cur.executemany(
                    f"REPLACE INTO {self.failed_table} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [failed_row(r) for r in added],
                )

        if added or removed:
            await self._retried(body)

    async def check(self) -> None:
        """Raise StoreError unless the server answers."""
        await self._execute("SELECT 1")

    async def load_paused(self) -> list[bytes]:
        """The paused function names."""
        rows = await self._fetch(f"SELECT function_name FROM {self.paused_table} ORDER BY 1")
        return [_bytes(name) for (name,) in rows]

    async def save_paused(self, name: bytes, paused: bool) -> None:
        """Keep ``name`` paused or not (a row in its own table)."""
        t = self.paused_table
        query = (
            f"INSERT IGNORE INTO {t} VALUES (%s)"
            if paused
            else f"DELETE FROM {t} WHERE function_name = %s"
        )
        await self._execute(query, name)

    async def load_results(self) -> list[KeptResult]:
        """The kept results, oldest first."""
        rows = await self._fetch(
            "SELECT handle, function_name, status, data, keep_seconds, ended_at"
            f" FROM {self.results_table} ORDER BY seq"
        )
        return [
            KeptResult(bytes(h), bytes(f), str(s), bytes(d), float(k), float(e))
            for h, f, s, d, k, e in rows
        ]

    async def write_results(self, added: Sequence[KeptResult], removed: Sequence[bytes]) -> None:
        """Store ``added`` (replacing records of the same handle) and delete ``removed``."""
        self._open_pool()
        t = self.results_table

        async def body(cur: Any) -> None:
            # A replaced record goes to the end: the order is the order of keeping.
            for handle in [*removed, *(r.handle for r in added)]:
                await cur.execute(f"DELETE FROM {t} WHERE handle = %s", (handle,))
            if added:
                await cur.executemany(
                    f"INSERT INTO {t} (handle, function_name, status, data, keep_seconds,"
                    " ended_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    [tuple(r) for r in added],
                )

        if added or removed:
            await self._retried(body)

    async def close(self) -> None:
        """Close the pool; safe to call twice."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()


def _bytes(value: str | bytes | None) -> bytes:
    """gearmand's VARCHAR columns come back as str."""
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else value
