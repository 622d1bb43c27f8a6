"""PostgreSQL specifics: libpq conninfo strings, sessions the server kills, batches
split into statements, and queue tables written by gearmand or an earlier geartrain
(what every backend does is in test_contract.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

import serverproc
from geartrain.protocol import PacketType
from geartrain.store import StoreError
from geartrain.store.durability import Durability
from geartrain.store.postgres import PostgresStore, conninfo_to_asyncpg
from gt_helpers import wait_for
from wire import submit_background

from .conftest import PG, job

pytestmark = [pytest.mark.backend, pytest.mark.timeout(60)]


@pytest.mark.parametrize(
    ("conninfo", "dsn", "kwargs"),
    [
        ("", None, {}),
        ("  ", None, {}),
        (
            "host=127.0.0.1 port=5432 user=postgres dbname=test",
            "postgresql://?host=127.0.0.1&port=5432&user=postgres&dbname=test",
            {},
        ),
        (
            "host = db.example  dbname='my db' password='it\\'s' connect_timeout=3",
            "postgresql://?host=db.example&dbname=my%20db&password=it%27s",
            {"timeout": 3.0},
        ),
        ("hostaddr=10.0.0.1 dbname=q", "postgresql://?dbname=q&host=10.0.0.1", {}),
        ("host=/run/postgresql user=", "postgresql://?host=%2Frun%2Fpostgresql", {}),
        (
            "postgresql://u:p@h:5433/db?connect_timeout=2&sslmode=disable",
            "postgresql://u:p@h:5433/db?sslmode=disable",
            {"timeout": 2.0},
        ),
        ("postgres://h/db", "postgres://h/db", {}),
        (  # several servers: writes go to the one that takes them
            "postgresql://u@a:5432,b:5433/db?target_session_attrs=read-write",
            "postgresql://u@a:5432,b:5433/db?target_session_attrs=read-write",
            {},
        ),
        (
            "host=a,b port=5432,5433 target_session_attrs=read-write",
            "postgresql://?host=a%2Cb&port=5432%2C5433&target_session_attrs=read-write",
            {},
        ),
        (
            "dbname=d options='-c search_path=a,b -cstatement_timeout=5s --lock-timeout=1s'",
            "postgresql://?dbname=d",
            {
                "server_settings": {
                    "search_path": "a,b",
                    "statement_timeout": "5s",
                    "lock_timeout": "1s",
                }
            },
        ),
    ],
)
def test_conninfo_conversion(conninfo: str, dsn: str | None, kwargs: dict[str, object]) -> None:
    assert conninfo_to_asyncpg(conninfo) == (dsn, kwargs)


@pytest.mark.parametrize(
    "bad", ["nonsense", "=x", "dbname='unterminated", "host=a b", "options=-x", "options=-cfoo"]
)
def test_bad_conninfo(bad: str) -> None:
    with pytest.raises(ValueError, match="conninfo"):
        PostgresStore(bad)


def test_description_hides_the_password() -> None:
    assert "secret" not in str(PostgresStore("host=h password=secret dbname=d"))
    assert "secret" not in str(PostgresStore("host=h password='sec ret' dbname=d"))
    assert "secret" not in str(PostgresStore("postgresql://u:secret@h/d"))


@pytest.mark.parametrize(("level", "sync"), [("crash", "off"), ("power", "on")])
async def test_quoted_conninfo_reaches_the_server(
    pg_database: str, table: str, level: str, sync: str
) -> None:
    conninfo = (
        f"host={PG['host']} port={PG['port']} user={PG['user']} dbname='{pg_database}'"
        " application_name='geartrain test' options='-c lock_timeout=1234'"
    )
    store = PostgresStore(conninfo, table, durability=Durability(level))
    await store.open()
    try:
        assert store._pool is not None
        assert await store._pool.fetchval("SHOW application_name") == "geartrain test"
        assert await store._pool.fetchval("SHOW lock_timeout") == "1234ms"
        # The level's commits whatever the server's default.
        assert await store._pool.fetchval("SHOW synchronous_commit") == sync
    finally:
        await store.close()


async def test_sessions_killed_by_the_server(
    pg_conninfo: str, pg_database: str, table: str
) -> None:
    store = PostgresStore(pg_conninfo, table)
    await store.open()
    admin = await asyncpg.connect(database=pg_database, **PG)
    try:
        await store.write([job(1)], [])
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            pg_database,
        )
        assert killed >= 1
        # The pool notices the closed session and connects again.
        await store.write([job(2)], [1])
        assert [j.id for j in await store.load()] == [2]
    finally:
        await admin.close()
        await store.close()


async def test_the_retry_after_a_lost_connection_skips_what_is_stored(
    pg_conninfo: str, pg_database: str, table: str
) -> None:
    """As if a lost attempt had committed job 1: the retry on a new session finds
    it stored and writes the rest (a failover, a restart of PostgreSQL)."""
    store = PostgresStore(pg_conninfo, table)
    await store.open()
    admin = await asyncpg.connect(database=pg_database, **PG)
    try:
        await store.write([job(1)], [])
        # The next write waits on a lock; its session is terminated while it waits.
        locked = admin.transaction()
        await locked.start()
        await admin.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        writing = asyncio.ensure_future(store.write([job(1), job(2)], []))
        waiting = "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'"
        await wait_for(lambda: admin.fetchval(waiting, pg_database), timeout=30)
        await admin.execute(
            "SELECT pg_terminate_backend($1)", await admin.fetchval(waiting, pg_database)
        )
        await locked.rollback()
        await writing
        assert [j.id for j in await store.load()] == [1, 2]
        with pytest.raises(StoreError):  # an id stored twice, not after a lost connection
            await store.write([job(2)], [])
    finally:
        await admin.close()
        await store.close()


@pytest.mark.interop
async def test_converts_a_table_written_by_gearmand(
    pg_conninfo: str,
    pg_database: str,
    table: str,
    start_server: Callable[..., serverproc.ServerProc],
) -> None:
    T = PacketType
    # gearmand 1.1 calls this queue "postgres"; geartrain also takes "libpq".
    gearmand = start_server(
        "gearmand", ["-q", "postgres", f"--libpq-conninfo={pg_conninfo}", f"--libpq-table={table}"]
    )
    submit_background(gearmand.port, T.SUBMIT_JOB_BG, b"f", b"n1", b"normal")
    submit_background(gearmand.port, T.SUBMIT_JOB_LOW_BG, b"f", b"l1", b"low")
    submit_background(gearmand.port, T.SUBMIT_JOB_HIGH_BG, b"g", b"h1", b"hi\0gh")
    submit_background(gearmand.port, T.SUBMIT_JOB_EPOCH, b"g", b"e1", b"1900000000", b"later")
    submit_background(gearmand.port, T.SUBMIT_JOB_BG, b"g", b"", b"")
    gearmand.stop()

    store = PostgresStore(pg_conninfo, table)
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


async def test_batches_bigger_than_one_statement(
    pg_conninfo: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches over the per-statement size go in several statements, one transaction."""
    monkeypatch.setattr("geartrain.store.postgres._MAX_STATEMENT_BYTES", 1000)
    store = PostgresStore(pg_conninfo, table)
    await store.open()
    try:
        jobs = [job(i, data=b"x" * 100) for i in range(1, 51)]
        await store.write(jobs[:2], [])
        await store.write(jobs[2:], [1])
        assert await store.load() == jobs[1:]
        with pytest.raises(StoreError):  # id 50 is taken: the chunks before it roll back too
            await store.write([job(i, data=b"y" * 100) for i in range(51, 70)] + [job(50)], [2])
        assert await store.load() == jobs[1:]
    finally:
        await store.close()


async def test_table_from_before_retries_gets_the_new_columns(
    pg_conninfo: str, pg_database: str, table: str
) -> None:
    """A queue written by an earlier geartrain (no handle, attempts, outcomes) keeps its jobs."""
    conn = await asyncpg.connect(database=pg_database, **PG)
    try:
        await conn.execute(
            f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, unique_key BYTEA NOT NULL,"
            " function_name BYTEA NOT NULL, priority INTEGER NOT NULL, data BYTEA NOT NULL,"
            " when_to_run BIGINT NOT NULL)"
        )
        await conn.execute(f"INSERT INTO {table} VALUES (4, 'u', 'f', 1, '', 0)")
    finally:
        await conn.close()
    store = PostgresStore(pg_conninfo, table)
    await store.open()
    try:
        assert [(j.id, j.handle, j.failures) for j in await store.load()] == [(4, b"", 0)]
        retry = job(5, handle=b"H:x:5", failures=1, outcomes="[]", retry="attempts=2")
        await store.write([retry], [])
        assert (await store.load())[1] == retry
        assert await store.load_failed() == []
    finally:
        await store.close()
