"""MySQL / MariaDB specifics: table layout, killed sessions, and a queue table
written by the real gearmand (what every backend does is in test_contract.py)."""

from __future__ import annotations

from collections.abc import Callable

import asyncmy
import pytest

import serverproc
from geartrain.protocol import PacketType
from geartrain.store.mysql import MysqlStore
from wire import submit_background

from .conftest import MYSQL, job

pytestmark = [pytest.mark.backend, pytest.mark.timeout(60)]


async def query(db: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = await asyncmy.connect(db=db, autocommit=True, **MYSQL)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql, args or None)
            return list(await cur.fetchall())
    finally:
        await conn.ensure_closed()


async def test_layout_is_innodb_with_long_blobs(mysql_database: str, table: str) -> None:
    store = MysqlStore(db=mysql_database, table=table, **MYSQL)  # type: ignore[arg-type]
    await store.open()
    await store.close()
    rows = await query(
        mysql_database,
        "SELECT engine FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        mysql_database,
        table,
    )
    assert rows == [("InnoDB",)]
    types = dict(
        await query(
            mysql_database,
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s",
            mysql_database,
            table,
        )
    )
    assert types["data"] == "longblob" and types["id"] == "bigint"


async def test_sessions_killed_by_the_server(mysql_database: str, table: str) -> None:
    store = MysqlStore(db=mysql_database, table=table, **MYSQL)  # type: ignore[arg-type]
    await store.open()
    try:
        await store.write([job(1)], [])
        ids = await query(
            mysql_database,
            "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
            mysql_database,
        )
        assert ids
        for (conn_id,) in ids:
            await query(mysql_database, "KILL %s", conn_id)
        await store.write([job(2)], [1])
        assert [j.id for j in await store.load()] == [2]
    finally:
        await store.close()


@pytest.mark.interop
async def test_converts_a_table_written_by_gearmand(
    mysql_database: str, table: str, start_server: Callable[..., serverproc.ServerProc]
) -> None:
    T = PacketType
    gearmand = start_server(
        "gearmand",
        [
            "-q",
            "mysql",
            "--mysql-host=127.0.0.1",
            f"--mysql-port={MYSQL['port']}",
            "--mysql-user=root",
            f"--mysql-db={mysql_database}",
            f"--mysql-table={table}",
        ],
    )
    submit_background(gearmand.port, T.SUBMIT_JOB_BG, b"f", b"n1", b"normal")
    submit_background(gearmand.port, T.SUBMIT_JOB_LOW_BG, b"f", b"l1", b"low")
    submit_background(gearmand.port, T.SUBMIT_JOB_HIGH_BG, b"g", b"h1", b"hi\0gh")
    submit_background(gearmand.port, T.SUBMIT_JOB_EPOCH, b"g", b"e1", b"1900000000", b"later")
    submit_background(gearmand.port, T.SUBMIT_JOB_BG, b"g", b"", b"")
    gearmand.stop()

    store = MysqlStore(db=mysql_database, table=table, **MYSQL)  # type: ignore[arg-type]
    await store.open()
    try:
        jobs = await store.load()
        assert [(j.id, j.function, j.unique, j.data, j.priority, j.when) for j in jobs] == [
            (1, b"g", b"h1", b"hi\0gh", 0, 0),
            (2, b"f", b"n1", b"normal", 1, 0),
            (3, b"g", b"e1", b"later", 1, 1900000000),
            (4, b"g", b"", b"", 1, 0),
            (5, b"f", b"l1", b"low", 2, 0),
        ]
        await store.write([job(6, unique=b"")], [1])
        assert [j.id for j in await store.load()] == [2, 3, 4, 5, 6]
    finally:
        await store.close()
    leftovers = await query(
        mysql_database,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        mysql_database,
    )
    names = sorted(str(name) for (name,) in leftovers if str(name).startswith(table[:40]))
    # The queue and the tables beside it (failed, paused, results), no temporaries.
    assert names == [table] + [f"{table}_{side}" for side in ("failed", "paused", "results")]


async def test_a_table_of_the_version_before_gets_the_retry_policy_column(
    mysql_database: str, table: str
) -> None:
    """A queue with the retry columns but no retry_policy keeps its jobs (no policy)."""
    await query(
        mysql_database,
        f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, unique_key VARBINARY(64) NOT NULL,"
        " function_name VARBINARY(255) NOT NULL, priority INT NOT NULL,"
        " data LONGBLOB NOT NULL, when_to_run BIGINT NOT NULL,"
        " handle VARBINARY(64) NOT NULL DEFAULT '', attempts INT NOT NULL DEFAULT 0,"
        " outcomes MEDIUMTEXT NULL) ENGINE=InnoDB",
    )
    await query(
        mysql_database, f"INSERT INTO {table} VALUES (4, 'u', 'f', 1, 'x', 0, 'H', 1, '[]')"
    )
    store = MysqlStore(db=mysql_database, table=table, **MYSQL)  # type: ignore[arg-type]
    await store.open()
    try:
        [old] = await store.load()
        assert (old.id, old.handle, old.failures, old.retry) == (4, b"H", 1, "")
        kept = job(5, handle=b"H:x:5", retry="attempts=3")
        await store.write([kept], [])
        assert (await store.load())[1] == kept
    finally:
        await store.close()
