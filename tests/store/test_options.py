"""The queue's command line: gearmand's flags, the default SQLite file, --store-url."""

from __future__ import annotations

import argparse
import logging
import re
import subprocess
from pathlib import Path

import pytest

import serverproc
from geartrain.store import Store
from geartrain.store.mysql import MysqlStore
from geartrain.store.options import (
    add_store_arguments,
    chosen_durability,
    default_state_dir,
    describe_store,
    store_from_args,
    store_from_url,
)
from geartrain.store.postgres import PostgresStore
from geartrain.store.redis import RedisStore
from geartrain.store.sqlite import SqliteStore

from .conftest import MYSQL, REDIS, job

STATE = Path("/state/geartrain")


def build(*argv: str) -> Store | None:
    parser = argparse.ArgumentParser()
    add_store_arguments(parser)
    return store_from_args(parser.parse_args(argv), STATE)


def test_default_is_sqlite_in_the_state_dir() -> None:
    store = build()
    assert isinstance(store, SqliteStore)
    assert store.path == STATE / "queue.sqlite3"
    assert store.table == "gearman_queue"


@pytest.mark.parametrize(
    ("argv", "description"),
    [
        ([], f"sqlite {STATE}/queue.sqlite3 table gearman_queue"),
        (["-q", "builtin"], "memory only (-q builtin): queued jobs are lost when the server stops"),
        (
            ["-q", "libpq", "--libpq-conninfo=host=db password=pw"],
            "postgresql host=db password=***",
        ),
        (["-q", "mysql", "--mysql-db=d", "--mysql-password=pw"], "mysql @localhost:3306/d"),
        (["-q", "redis", "--redis-password=pw"], "redis 127.0.0.1:6379/0 prefix '_gear_'"),
    ],
)
def test_description_for_the_log(argv: list[str], description: str) -> None:
    parser = argparse.ArgumentParser()
    add_store_arguments(parser)
    ns = parser.parse_args(argv)
    text = describe_store(ns, store_from_args(ns, STATE))
    assert text.startswith(description)
    assert "pw" not in text


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_store_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        ([], "crash"),
        (["-q", "libsqlite3"], "crash"),
        (["-q", "postgres", "--durability=power"], "power"),
        (["--store-url", "redis://h/0", "--durability", "crash"], "crash"),
        (["-q", "builtin"], "memory"),
        (["--store-url", "builtin:"], "memory"),
        (["--durability=memory"], "memory"),
        (["-q", "builtin", "--durability=memory"], "memory"),
    ],
)
def test_durability_level(argv: list[str], level: str) -> None:
    assert chosen_durability(parse(*argv)) == level


def test_the_level_reaches_the_store() -> None:
    store = build("--durability=power", "--libsqlite3-db=/x/q.db")
    assert isinstance(store, SqliteStore) and store.durability == "power"
    assert build("--durability=memory") is None
    url_store = store_from_url("sqlite:///x/q.db")
    assert isinstance(url_store, SqliteStore) and url_store.durability == "crash"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-q", "builtin", "--durability=crash"], "--durability crash needs a durable queue"),
        (["-q", "libsqlite3", "--durability=memory"], "--durability memory keeps no queue"),
    ],
)
def test_durability_that_the_queue_cannot_give(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chosen_durability(parse(*argv))


@pytest.mark.parametrize("name", ["builtin", "BUILTIN", "Builtin"])
def test_builtin_is_memory_only(name: str) -> None:
    assert build("-q", name) is None
    assert build(f"--queue-type={name}") is None


def test_state_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "geartrain"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/dir")  # the spec says to ignore it
    assert default_state_dir() == Path.home() / ".local" / "state" / "geartrain"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir() == Path.home() / ".local" / "state" / "geartrain"
    parser = argparse.ArgumentParser()
    add_store_arguments(parser)
    store = store_from_args(parser.parse_args([]))
    assert isinstance(store, SqliteStore)
    assert store.path == default_state_dir() / "queue.sqlite3"


@pytest.mark.parametrize(
    "argv",
    [
        ["-q", "libsqlite3", "--libsqlite3-db=/q.db", "--libsqlite3-table=jobs"],
        ["-q", "LibSQLite3", "--libsqlite3-db", "/q.db", "--libsqlite3-table", "jobs"],
        ["-q", "sqlite", "--libsqlite3-db=/q.db", "--libsqlite3-table=jobs"],
        ["--libsqlite3-db=/q.db", "--libsqlite3-table=jobs"],  # no -q: SQLite anyway
    ],
)
def test_sqlite_flags(argv: list[str]) -> None:
    store = build(*argv)
    assert isinstance(store, SqliteStore)
    assert (store.path, store.table) == (Path("/q.db"), "jobs")


@pytest.mark.parametrize("name", ["libpq", "Postgres", "postgresql"])
def test_postgres_flags(name: str) -> None:
    store = build("-q", name, "--libpq-conninfo=host=db dbname=x", "--libpq-table=jobs")
    assert isinstance(store, PostgresStore)
    assert (store.conninfo, store.table) == ("host=db dbname=x", "jobs")
    default = build("-q", name)
    assert isinstance(default, PostgresStore)
    assert (default.conninfo, default.table) == ("", "queue")


@pytest.mark.parametrize("name", ["mysql", "MySQL", "mariadb"])
def test_mysql_flags(name: str) -> None:
    store = build(
        "-q", name, "--mysql-host=db", "--mysql-port=3307", "--mysql-user=u",
        "--mysql-password=p", "--mysql-db=d", "--mysql-table=jobs",
    )  # fmt: skip
    assert isinstance(store, MysqlStore)
    assert store.connect_args == {
        "host": "db", "port": 3307, "user": "u", "password": "p", "db": "d"
    }  # fmt: skip
    assert store.table == "jobs"
    assert "p" not in str(store).replace("mysql", "")


def test_mysql_needs_a_database() -> None:
    with pytest.raises(ValueError, match="--mysql-db"):
        build("-q", "mysql")


def test_redis_flags() -> None:
    store = build(
        "-q", "redis", "--redis-server=cache", "--redis-port=6380", "--redis-password=pw",
        "--redis-prefix=app_",
    )  # fmt: skip
    assert isinstance(store, RedisStore)
    assert (store.host, store.port, store.prefix) == ("cache", 6380, "app_")
    assert store._options["password"] == "pw"
    default = build("-q", "REDIS")
    assert isinstance(default, RedisStore)
    assert (default.host, default.port, default.prefix) == ("127.0.0.1", 6379, "_gear_")


def test_ports_may_be_service_names() -> None:
    store = build("-q", "redis", "--redis-port=http")  # /etc/services: http 80/tcp
    assert isinstance(store, RedisStore) and store.port == 80
    with pytest.raises(SystemExit):
        build("-q", "redis", "--redis-port=no-such-service")


def test_unknown_queue_type() -> None:
    with pytest.raises(ValueError, match="libmemcached.*known: builtin, libsqlite3"):
        build("-q", "libmemcached")


def test_store_queue_on_shutdown_is_accepted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "geartrain.store.options"):
        store = build("-q", "libsqlite3", "--libsqlite3-db=/q.db", "--store-queue-on-shutdown")
    assert isinstance(store, SqliteStore)
    assert "no effect" in caplog.text


@pytest.mark.interop
def test_every_gearmand_queue_flag_is_known() -> None:
    """gearmand's own --help lists the queue flags geartrain must accept."""
    text = subprocess.run(
        [serverproc.GEARMAND, "--help"], capture_output=True, text=True, check=False
    ).stdout
    flags = re.findall(
        r"--((?:libsqlite3|libpq|mysql|redis)-[a-z-]+|store-queue-on-shutdown)", text
    )
    assert len(set(flags)) == 15  # 3 libsqlite3, 2 libpq, 6 mysql, 4 redis
    parser = argparse.ArgumentParser()
    add_store_arguments(parser)
    known = {a for action in parser._actions for a in action.option_strings}
    assert {f"--{f}" for f in flags} <= known
    assert {"-q", "--queue-type"} <= known


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("builtin:", None),
        (
            "sqlite:///var/q.db",
            (SqliteStore, {"path": Path("/var/q.db"), "table": "gearman_queue"}),
        ),
        ("sqlite:q.db?table=jobs", (SqliteStore, {"path": Path("q.db"), "table": "jobs"})),
        (
            "postgresql://u:p@h:5433/db?sslmode=disable&table=jobs",
            (
                PostgresStore,
                {"conninfo": "postgresql://u:p@h:5433/db?sslmode=disable", "table": "jobs"},
            ),
        ),
        (
            "mariadb://u:p%40ss@h:3307/d",
            (
                MysqlStore,
                {
                    "connect_args": {
                        "host": "h",
                        "port": 3307,
                        "user": "u",
                        "password": "p@ss",
                        "db": "d",
                    }
                },
            ),
        ),
        (
            "redis://:pw@h:6380/2?prefix=x_",
            (RedisStore, {"host": "h", "port": 6380, "db": 2, "prefix": "x_"}),
        ),
        ("redis://h", (RedisStore, {"host": "h", "port": 6379, "db": 0, "prefix": "_gear_"})),
        (
            "postgresql://u@a:5432,b:5433/db?target_session_attrs=read-write",
            (
                PostgresStore,
                {"conninfo": "postgresql://u@a:5432,b:5433/db?target_session_attrs=read-write"},
            ),
        ),
        (
            "redis+sentinel://:pw@s1:26380,s2/main?db=3&prefix=x_&wait_replicas=1"
            "&wait_timeout_ms=250",
            (
                RedisStore,
                {
                    "sentinels": [("s1", 26380), ("s2", 26379)],
                    "service": "main",
                    "db": 3,
                    "prefix": "x_",
                    "wait_replicas": 1,
                    "wait_timeout_ms": 250,
                    "primary": None,
                },
            ),
        ),
        ("redis://h?wait_replicas=2", (RedisStore, {"wait_replicas": 2, "sentinels": []})),
    ],
)
def test_store_url(url: str, expected: tuple[type, dict[str, object]] | None) -> None:
    store = store_from_url(url)
    if expected is None:
        assert store is None
        return
    cls, attrs = expected
    assert isinstance(store, cls)
    assert {name: getattr(store, name) for name in attrs} == attrs


@pytest.mark.parametrize(
    "url",
    [
        "nosuch://x",
        "sqlite://",
        "mysql://h",
        "redis+sentinel://s1:26379",  # no master name
        "redis+sentinel://s1:port/m",
        "redis+sentinel://s1/m?wait_replicas=one",
    ],
)
def test_bad_store_url(url: str) -> None:
    with pytest.raises(ValueError):
        store_from_url(url)


def test_store_url_or_q_not_both() -> None:
    with pytest.raises(ValueError, match="either"):
        build("-q", "redis", "--store-url=redis://h")


@pytest.mark.backend
@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql", "redis"])
async def test_built_stores_work(
    backend: str,
    tmp_path: Path,
    table: str,
    request: pytest.FixtureRequest,
) -> None:
    """A gearmand-style command line for each backend gives a working store."""
    if backend == "sqlite":
        argv = ["-q", "libsqlite3", f"--libsqlite3-db={tmp_path / 'q.db'}"]
    elif backend == "postgres":
        conninfo = request.getfixturevalue("pg_conninfo")
        argv = ["-q", "libpq", f"--libpq-conninfo={conninfo}", f"--libpq-table={table}"]
    elif backend == "mysql":
        db = request.getfixturevalue("mysql_database")
        argv = ["-q", "mysql", "--mysql-host=127.0.0.1", f"--mysql-port={MYSQL['port']}",
                "--mysql-user=root", f"--mysql-db={db}", f"--mysql-table={table}"]  # fmt: skip
    else:
        prefix = request.getfixturevalue("redis_prefix")
        argv = ["-q", "redis", "--redis-server=127.0.0.1", f"--redis-port={REDIS['port']}"]
        argv.append(f"--redis-prefix={prefix}")
    store = build(*argv)
    assert store is not None
    await store.open()
    try:
        await store.write([job(1), job(2)], [])
        await store.write([], [1])
        assert await store.load() == [job(2)]
    finally:
        await store.close()
