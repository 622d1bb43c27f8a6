"""PostgreSQL queue (asyncpg), gearmand's ``-q libpq``.

A write is one statement: a DELETE in a CTE beside an INSERT from ``unnest``
of column arrays, so a batch of thousands costs one round trip and one commit.
At the power level sessions run with ``synchronous_commit=on`` whatever the
server default, so a returned write is on disk; at the crash level with
``off``: a returned write is in PostgreSQL's WAL buffers, safe from a crash of
geartrain, and PostgreSQL's WAL writer flushes it within three
``wal_writer_delay`` (200 ms by default).  The pool replaces connections the server dropped,
so the store recovers by itself once PostgreSQL is back.

A conninfo may name several servers (libpq's ``host=a,b port=1,2`` or
``postgresql://a:1,b:2/db``); with ``target_session_attrs=read-write`` each new
connection goes to the one that takes writes, so after a failover (a standby
promoted) the store carries on on the new primary.  A write that reaches a
read-only server counts as a lost connection, and the one retry after a lost
connection skips the rows the lost attempt may have committed.
"""

from __future__ import annotations

import logging
import re
import shlex
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from . import StoredJob, StoreError
from .durability import DEFAULT, Durability
from .names import LIBPQ_TABLE, check_identifier
from .reconnect import driver_error, once_more_if_lost
from .records import FAILED_COLUMNS, FailedJob, KeptResult, failed_record, failed_row

__all__ = ["DEFAULT_TABLE", "PostgresStore", "conninfo_to_asyncpg", "on_standby", "server_address"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_TABLE = LIBPQ_TABLE
"""gearmand's ``--libpq-table`` default."""

# asyncpg binds each array as one parameter (1 GB at most); split bigger batches.
_MAX_STATEMENT_BYTES = 64 << 20

_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)

# gearmand's columns plus the id; BYTEA because names and uniques are bytes.
_CREATE = (
    "CREATE TABLE IF NOT EXISTS {table} (id BIGINT PRIMARY KEY, unique_key BYTEA NOT NULL,"
    " function_name BYTEA NOT NULL, priority INTEGER NOT NULL, data BYTEA NOT NULL,"
    " when_to_run BIGINT NOT NULL)"
)

# Kept with each job since retries (added to older tables on open).
_ADD_RETRY_COLUMNS = (
    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS handle BYTEA NOT NULL DEFAULT '',"
    " ADD COLUMN IF NOT EXISTS attempts INTEGER NOT NULL DEFAULT 0,"
    " ADD COLUMN IF NOT EXISTS outcomes TEXT NOT NULL DEFAULT '',"
    " ADD COLUMN IF NOT EXISTS retry_policy TEXT NULL"  # a submission's own (NULL: none)
)
_CREATE_FAILED = (
    "CREATE TABLE IF NOT EXISTS {table} (handle BYTEA PRIMARY KEY, function_name BYTEA NOT NULL,"
    " unique_key BYTEA NOT NULL, data BYTEA NOT NULL, priority INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, failed_at DOUBLE PRECISION NOT NULL, reason TEXT NOT NULL,"
    " outcomes TEXT NOT NULL)"
)
_CREATE_RESULTS = (
    "CREATE TABLE IF NOT EXISTS {table} (seq BIGSERIAL, handle BYTEA PRIMARY KEY,"
    " function_name BYTEA NOT NULL, status TEXT NOT NULL, data BYTEA NOT NULL,"
    " keep_seconds DOUBLE PRECISION NOT NULL, ended_at DOUBLE PRECISION NOT NULL)"
)

# The session died (server restart, terminated backend): worth one more try
# on a fresh connection.  A FATAL notice that arrives while the connection is
# idle can leave asyncpg's protocol confused (InternalClientError "cannot
# switch to state"), which is the same case; so is a multi-host conninfo none
# of whose servers takes writes yet (TargetServerAttributeNotMatched, one).
_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
)


def on_standby(exc: BaseException) -> bool:
    """A write reached a read-only server (a standby, or a primary demoted since
    the session began): its sessions are no use; a new one finds the primary."""
    return isinstance(exc, asyncpg.exceptions.ReadOnlySQLTransactionError)


def _lost(exc: Exception) -> bool:
    return isinstance(exc, _LOST) or on_standby(exc)


_WHERE = "SELECT host(inet_server_addr()), inet_server_port()"


async def server_address(conn: asyncpg.Connection) -> str:
    """``host:port`` of the server at the other end of ``conn`` (the primary, with
    ``target_session_attrs=read-write``); ``local`` over a Unix socket."""
    host, port = await conn.fetchrow(_WHERE)
    return "local" if host is None else f"{host}:{port}"


# libpq's key = value syntax: values bare or in single quotes, \ escapes.
_PAIR = re.compile(r"\s*(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|(?:[^\s'\\]|\\.)*)\s*")
_ESCAPE = re.compile(r"\\(.)")


def _parse_pairs(conninfo: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    pos = 0
    while pos < len(conninfo):
        match = _PAIR.match(conninfo, pos)
        if match is None:
            raise ValueError(f"bad PostgreSQL conninfo near {conninfo[pos : pos + 20]!r}")
        key, raw = match.groups()
        if raw.startswith("'"):
            raw = raw[1:-1]
        pairs[key] = _ESCAPE.sub(r"\1", raw)
        pos = match.end()
    return pairs


def conninfo_to_asyncpg(conninfo: str) -> tuple[str | None, dict[str, Any]]:
    """Turn a libpq conninfo (``host=... dbname=...`` or a URL) into asyncpg's dsn and kwargs.

    asyncpg reads only URLs, so the key = value form becomes the query of an
    empty ``postgresql://`` URL, which asyncpg maps the way libpq does.  An
    empty string means libpq's defaults (``PGHOST`` and friends).

    Raises:
        ValueError: the string is neither form.
    """
    text = conninfo.strip()
    kwargs: dict[str, Any] = {}
    if not text:
        return None, kwargs
    if re.match(r"postgres(ql)?://", text):
        parts = urllib.parse.urlsplit(text)
        pairs = dict(urllib.parse.parse_qsl(parts.query))
        base = urllib.parse.urlunsplit(parts._replace(query=""))
    else:
        pairs = _parse_pairs(text)
        base = "postgresql://"
    # Not a server setting in asyncpg's eyes; it is the connect timeout.
    if "connect_timeout" in pairs:
        kwargs["timeout"] = float(pairs.pop("connect_timeout"))
    if "hostaddr" in pairs:  # a numeric address; asyncpg only knows host
        address = pairs.pop("hostaddr")
        pairs.setdefault("host", address)
    if "options" in pairs:  # "-c name=value" switches: settings for the session
        kwargs["server_settings"] = _parse_options(pairs.pop("options"))
    pairs = {k: v for k, v in pairs.items() if v != ""}
    query = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
    return (f"{base}?{query}" if query else base), kwargs


def _parse_options(text: str) -> dict[str, str]:
    """libpq's ``options`` (``-c a=b -c c=d``, ``-ca=b``, ``--a-b=c``) as a settings dict."""
    settings: dict[str, str] = {}
    tokens = iter(shlex.split(text))
    for token in tokens:
        if token == "-c":
            token = next(tokens, "")
        elif token.startswith("-c"):
            token = token[2:]
        elif token.startswith("--"):
            token = token[2:].replace("-", "_")
        else:
            raise ValueError(f"unsupported option {token!r} in the conninfo's options")
        name, sep, value = token.partition("=")
        if not sep or not name:
            raise ValueError(f"bad setting {token!r} in the conninfo's options")
        settings[name] = value
    return settings


def _describe(conninfo: str) -> str:
    """The conninfo without its password, for logs."""
    text = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", conninfo)
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text) or "(libpq defaults)"


class PostgresStore:
    """A queue in a PostgreSQL table.

    Args:
        conninfo: libpq conninfo string or URL (gearmand's ``--libpq-conninfo``).
        table: the table name (``--libpq-table``).
        timeout: seconds allowed for each statement.
        connect_timeout: seconds allowed to connect (the conninfo's
            ``connect_timeout`` wins).
        durability: ``crash`` (``synchronous_commit=off``) or ``power`` (``on``).
    """

    def __init__(
        self,
        conninfo: str = "",
        table: str = DEFAULT_TABLE,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        durability: Durability = DEFAULT,
    ) -> None:
        self.conninfo = conninfo
        self.durability = durability
        self.table = check_identifier(table)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._dsn, self._kwargs = conninfo_to_asyncpg(conninfo)
        self._pool: asyncpg.Pool | None = None
        t = self.table
        self._insert = (
            f"INSERT INTO {t} (id, function_name, unique_key, data, priority, when_to_run,"
            " handle, attempts, outcomes, retry_policy)"
            " SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[],"
            " $5::int[], $6::bigint[], $7::bytea[], $8::int[], $9::text[], $10::text[])"
        )
        # The retry after a lost connection: the lost attempt may have committed
        # (and reached the standby now primary); ids are never reused.
        self._insert_again = f"{self._insert} ON CONFLICT (id) DO NOTHING"
        self._delete_then = f"WITH gone AS (DELETE FROM {t} WHERE id = ANY($11::bigint[])) "
        self.primary: str | None = None
        """``host:port`` of the server the last new connection reached, once open."""
        self.failed_table = f"{t[:50]}_failed"
        self.paused_table = f"{t[:50]}_paused"
        self.results_table = f"{t[:50]}_results"

    def __str__(self) -> str:
        return f"postgresql {_describe(self.conninfo)} table {self.table}"

    def _open_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(f"{self}: not open")
        return self._pool

    async def _retried(self, call: Callable[[asyncpg.Pool], Awaitable[_T]]) -> _T:
        """``call(pool)``, once more on fresh connections if the session was lost;
        its errors as StoreError."""
        pool = self._open_pool()
        try:
            return await once_more_if_lost(lambda: call(pool), _lost, self, pool.expire_connections)
        except _ERRORS as exc:
            raise driver_error(self, exc) from exc

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._retried(lambda pool: pool.fetch(query, *args))

    async def open(self) -> None:
        """Connect and create (or convert) the table."""
        if self._pool is not None:
            return
        # synchronous_commit: the level's, whatever the server default (off:
        # the commit returns before its WAL flush).  force_custom_plan: a
        # generic plan for "id = ANY($7)" may pick a sequential scan (measured:
        # 55 ms per 100-id delete on 170k rows); planning each statement costs
        # microseconds.
        sync = "on" if self.durability is Durability.POWER else "off"
        settings = {"synchronous_commit": sync, "plan_cache_mode": "force_custom_plan"}
        if "application_name" not in (self._dsn or ""):
            settings["application_name"] = "geartrain"
        kwargs = {"timeout": self.connect_timeout, **self._kwargs}
        settings.update(kwargs.pop("server_settings", {}))  # what the user set explicitly wins
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=2,
                command_timeout=self.timeout,
                server_settings=settings,
                init=self._connected,
                **kwargs,
            )
            await self._prepare_table(self._pool)
        except _ERRORS as exc:
            await self.close()
            raise driver_error(self, exc) from exc

    async def _connected(self, conn: asyncpg.Connection) -> None:
        address = await server_address(conn)
        if address != self.primary:
            if self.primary is not None:
                log.warning("%s: writing to %s now (was %s)", self, address, self.primary)
            self.primary = address

    async def _prepare_table(self, pool: asyncpg.Pool) -> None:
        rows = await pool.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = $1",
            self.table,
        )
        columns = {r[0] for r in rows}
        if not columns:
            await pool.execute(_CREATE.format(table=self.table))
        elif "id" not in columns:
            await self._convert_gearmand_table(pool, "when_to_run" in columns)
        elif not {"unique_key", "function_name", "priority", "data", "when_to_run"} <= columns:
            raise StoreError(f"{self}: the table exists but is not a job queue")
        await pool.execute(_ADD_RETRY_COLUMNS.format(table=self.table))
        await pool.execute(_CREATE_FAILED.format(table=self.failed_table))
        await pool.execute(
            f"CREATE TABLE IF NOT EXISTS {self.paused_table} (function_name BYTEA PRIMARY KEY)"
        )
        await pool.execute(_CREATE_RESULTS.format(table=self.results_table))

    async def _convert_gearmand_table(self, pool: asyncpg.Pool, has_when: bool) -> None:
        """Rebuild a table written by gearmand's libpq plugin, in one transaction."""
        old = f"{self.table[:40]}_gearmand_old"
        t = self.table
        when = "coalesce(when_to_run, 0)" if has_when else "0"
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"ALTER TABLE {t} RENAME TO {old}")
            await conn.execute(_CREATE.format(table=t))
            # Priority first, then physical order, which is gearmand's replay order.
            status = await conn.execute(
                f"INSERT INTO {t} SELECT row_number() OVER (ORDER BY priority, ctid),"
                " convert_to(coalesce(unique_key, ''), 'UTF8'),"
                " convert_to(coalesce(function_name, ''), 'UTF8'), coalesce(priority, 1),"
                f" coalesce(data, ''::bytea), {when} FROM {old}"
            )
            await conn.execute(f"DROP TABLE {old}")
        log.warning("%s: converted gearmand's table (%s jobs)", self, status.split()[-1])

    async def load(self) -> list[StoredJob]:
        """Every stored job in ascending id order."""
        rows = await self._fetch(
            "SELECT id, function_name, unique_key, data, priority, when_to_run,"
            " handle, attempts, outcomes, coalesce(retry_policy, '')"
            f" FROM {self.table} ORDER BY id"
        )
        return [StoredJob(*row) for row in rows]

    async def write(self, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        """Insert ``added`` and delete ``done`` in one committed transaction."""
        self._open_pool()  # not open is an error even with nothing to write
        if added or done:
            again = iter((False, True))
            await self._retried(lambda pool: self._write(pool, added, done, next(again)))

    async def _write(
        self, pool: asyncpg.Pool, added: Sequence[StoredJob], done: Sequence[int], again: bool
    ) -> None:
        insert = self._insert_again if again else self._insert
        chunks = _chunks(added)
        if len(chunks) <= 1:
            await pool.execute(self._delete_then + insert, *_columns(added), list(done))
            return
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"DELETE FROM {self.table} WHERE id = ANY($1::bigint[])", list(done))
            for chunk in chunks:
                await conn.execute(insert, *_columns(chunk))

    async def load_failed(self) -> list[FailedJob]:
        """The failed-job set, oldest first."""
        rows = await self._fetch(
            f"SELECT {FAILED_COLUMNS} FROM {self.failed_table} ORDER BY failed_at"
        )
        return [failed_record(row) for row in rows]

    async def write_failed(self, added: Sequence[FailedJob], removed: Sequence[bytes]) -> None:
        """Store ``added`` (replacing records of the same handle) and delete ``removed``."""
        t = self.failed_table

        async def body(pool: asyncpg.Pool) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    f"DELETE FROM {t} WHERE handle = ANY($1::bytea[])", list(removed)
                )
                await conn.executemany(
                    f"INSERT INTO {t} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    " ON CONFLICT (handle) DO UPDATE SET function_name = EXCLUDED.function_name,"
                    " unique_key = EXCLUDED.unique_key, data = EXCLUDED.data,"
                    " priority = EXCLUDED.priority, attempts = EXCLUDED.attempts,"
                    " failed_at = EXCLUDED.failed_at, reason = EXCLUDED.reason,"
                    " outcomes = EXCLUDED.outcomes",
                    [failed_row(r) for r in added],
                )

        self._open_pool()
        if added or removed:
            await self._retried(body)

    async def check(self) -> None:
        """Raise StoreError unless a primary answers (a standby takes no writes)."""
        pool = self._open_pool()
        standby = await self._retried(lambda pool: pool.fetchval("SELECT pg_is_in_recovery()"))
        if standby:
            await pool.expire_connections()  # the next session looks for the primary
            raise StoreError(f"{self}: the server answering is a standby (read-only)")

    async def load_paused(self) -> list[bytes]:
        """The paused function names."""
        rows = await self._fetch(f"SELECT function_name FROM {self.paused_table} ORDER BY 1")
        return [bytes(r[0]) for r in rows]

    async def save_paused(self, name: bytes, paused: bool) -> None:
        """Keep ``name`` paused or not (a row in its own table)."""
        t = self.paused_table
        if paused:
            query = f"INSERT INTO {t} VALUES ($1) ON CONFLICT DO NOTHING"
        else:
            query = f"DELETE FROM {t} WHERE function_name = $1"
        await self._retried(lambda pool: pool.execute(query, name))

    async def load_results(self) -> list[KeptResult]:
        """The kept results, oldest first."""
        rows = await self._fetch(
            "SELECT handle, function_name, status, data, keep_seconds, ended_at"
            f" FROM {self.results_table} ORDER BY seq"
        )
        return [KeptResult(*row) for row in rows]

    async def write_results(self, added: Sequence[KeptResult], removed: Sequence[bytes]) -> None:
        """Store ``added`` (replacing records of the same handle) and delete ``removed``."""
        t = self.results_table
        gone = list(removed) + [r.handle for r in added]  # a replaced record goes to the end

        async def body(pool: asyncpg.Pool) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(f"DELETE FROM {t} WHERE handle = ANY($1::bytea[])", gone)
                await conn.executemany(
                    f"INSERT INTO {t} (handle, function_name, status, data, keep_seconds,"
                    " ended_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    added,
                )

        self._open_pool()
        if added or removed:
            await self._retried(body)

    async def close(self) -> None:
        """Close the pool; safe to call twice."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.close()
            except _ERRORS:
                pool.terminate()


def _columns(jobs: Sequence[StoredJob]) -> tuple[list[Any], ...]:
    return (
        [j.id for j in jobs],
        [j.function for j in jobs],
        [j.unique for j in jobs],
        [j.data for j in jobs],
        [j.priority for j in jobs],
        [j.when for j in jobs],
        [j.handle for j in jobs],
        [j.failures for j in jobs],
        [j.outcomes for j in jobs],
        [j.retry or None for j in jobs],
    )


def _chunks(jobs: Sequence[StoredJob]) -> list[Sequence[StoredJob]]:
    """Split ``jobs`` so that no statement carries more than _MAX_STATEMENT_BYTES of data."""
    chunks: list[Sequence[StoredJob]] = []
    start = size = 0
    for i, job in enumerate(jobs):
        job_size = len(job.data) + len(job.function) + len(job.unique)
        if size + job_size > _MAX_STATEMENT_BYTES and i > start:
            chunks.append(jobs[start:i])
            start, size = i, 0
        size += job_size
    chunks.append(jobs[start:])
    return chunks
