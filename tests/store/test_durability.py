"""The durable-queue promise, end to end through a real `geartrain server`.

- Crash: thousands of background jobs acknowledged under concurrent load, the
  server killed with SIGKILL mid-stream and restarted: every acknowledged job
  runs, and none twice in the drain (one test per backend and durable level).
- Outage: the database server stops; background submissions get ERROR (never
  JOB_CREATED), foreground work goes on, the outage is logged once, and the
  server recovers by itself when the database comes back.
- Moving from gearmand: a queue written by gearmand's libsqlite3 plugin runs.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

import serverproc
from geartrain.protocol import Packet, PacketType
from geartrain.store.postgres import conninfo_to_asyncpg
from serverproc import ServerProc
from wire import Wire, admin_command

from .conftest import MYSQL, PG, REDIS
from .dbservers import PrivatePostgres, PrivateRedis

T = PacketType
pytestmark = [pytest.mark.backend, pytest.mark.slow]

ACKED_BEFORE_KILL = 3000
CLIENTS = 6
WINDOW = 64  # submissions in flight per client connection


@pytest.fixture
def server_args(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, table: str
) -> list[str]:
    """`geartrain server` flags (gearmand's names) for this test's own queue."""
    if backend == "sqlite":
        return ["-q", "libsqlite3", f"--libsqlite3-db={tmp_path / 'queue.sqlite3'}"]
    if backend == "postgres":
        db = request.getfixturevalue("pg_database")
        conninfo = f"host={PG['host']} port={PG['port']} user={PG['user']} dbname={db}"
        return ["-q", "postgres", f"--libpq-conninfo={conninfo}", f"--libpq-table={table}"]
    if backend == "mysql":
        db = request.getfixturevalue("mysql_database")
        return ["-q", "mysql", "--mysql-host=127.0.0.1", f"--mysql-port={MYSQL['port']}"] + [
            "--mysql-user=root",
            f"--mysql-db={db}",
            f"--mysql-table={table}",
        ]
    prefix = request.getfixturevalue("redis_prefix")
    return ["-q", "redis", "--redis-server=127.0.0.1", f"--redis-port={REDIS['port']}"] + [
        f"--redis-prefix={prefix}"
    ]


@pytest.fixture
def servers() -> Iterator[Callable[..., ServerProc]]:
    started: list[ServerProc] = []

    def start(args: list[str], port: int | None = None) -> ServerProc:
        srv = serverproc.start_geartrain(args, port)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.cleanup()


def submitter(port: int, name: int, acked: list[bytes], stop: threading.Event) -> None:
    """Pipeline background jobs until the server dies; record the acknowledged ones."""
    try:
        conn = Wire(port, timeout=10)
    except OSError:
        return
    in_flight: list[bytes] = []
    seq = 0
    try:
        while not stop.is_set() or in_flight:
            while len(in_flight) < WINDOW and not stop.is_set():
                data = b"%d-%d" % (name, seq)
                seq += 1
                conn.send(T.SUBMIT_JOB_BG, b"durable", str(uuid.uuid4()).encode(), data)
                in_flight.append(data)
            reply = conn.read()
            assert reply.type == T.JOB_CREATED, reply
            acked.append(in_flight.pop(0))
    except OSError:
        pass  # the server was killed: what was not acknowledged may or may not exist
    finally:
        conn.close()


def drain(port: int, function: bytes = b"durable") -> list[bytes]:
    """Run every queued job of ``function`` once; return their payloads in order."""
    worker = Wire(port, timeout=10)
    worker.send(T.CAN_DO, function)
    ran = []
    while True:
        worker.send(T.GRAB_JOB)
        packet = worker.read()
        if packet.type == T.NO_JOB:
            break
        handle, _, data = packet.args
        ran.append(data)
        worker.send(T.WORK_COMPLETE, handle, b"")
    worker.close()
    return ran


@pytest.mark.timeout(180)
@pytest.mark.parametrize("level", ["crash", "power"])
def test_sigkill_loses_no_acknowledged_job(
    server_args: list[str], level: str, servers: Callable[..., ServerProc]
) -> None:
    server_args = [*server_args, f"--durability={level}"]
    server = servers(server_args)
    acked: list[bytes] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=submitter, args=(server.port, i, acked, stop), daemon=True)
        for i in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acked) < ACKED_BEFORE_KILL and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # SIGKILL, mid-stream: submissions are still in flight
    stop.set()
    for thread in threads:
        thread.join(10)
    assert len(acked) >= ACKED_BEFORE_KILL

    restarted = servers(server_args, port=server.port)
    ran = drain(restarted.port)
    assert len(ran) == len(set(ran)), "a job ran twice in the drain"
    missing = set(acked) - set(ran)
    assert not missing, f"{len(missing)} acknowledged jobs lost, e.g. {sorted(missing)[:3]}"
    assert drain(restarted.port) == []


def submit(conn: Wire, ptype: PacketType, data: bytes) -> Packet:
    conn.send(ptype, b"durable", str(uuid.uuid4()).encode(), data)
    return conn.read()


def wait_created(port: int, data: bytes, timeout: float = 20) -> None:
    """Submit until the server acknowledges (it recovers by itself, after a retry)."""
    deadline = time.monotonic() + timeout
    conn = Wire(port, timeout=10)
    try:
        while True:
            reply = submit(conn, T.SUBMIT_JOB_BG, data)
            if reply.type == T.JOB_CREATED:
                return
            assert reply.type == T.ERROR and reply.args[0] == b"QUEUE_ERROR", reply
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.2)
    finally:
        conn.close()


def check_outage(
    server: ServerProc, stop_db: Callable[[], None], start_db: Callable[[], None]
) -> None:
    conn = Wire(server.port, timeout=10)
    assert submit(conn, T.SUBMIT_JOB_BG, b"before").type == T.JOB_CREATED

    stop_db()
    for i in range(5):
        reply = submit(conn, T.SUBMIT_JOB_BG, b"refused %d" % i)
        assert reply.type == T.ERROR, reply
        assert reply.args[0] == b"QUEUE_ERROR"
    # The server is up and foreground work goes on.
    worker = Wire(server.port, timeout=10)
    worker.send(T.CAN_DO, b"fg")
    assert submit_fg(conn, worker) == b"done"
    worker.close()

    start_db()
    wait_created(server.port, b"after")
    # The refused jobs never existed: only "before" and "after" are queued.
    assert admin_command(server.port, "status") == b"durable\t2\t0\t0\nfg\t0\t0\t0\n.\n"
    log = server.log()
    assert log.count("Queue store failed") == 1, log  # once per outage, not per job
    assert "Queue store is back" in log
    conn.close()


def submit_fg(client: Wire, worker: Wire) -> bytes:
    client.send(T.SUBMIT_JOB, b"fg", b"", b"x")
    handle = client.read().args[0]
    worker.send(T.GRAB_JOB)
    assigned = worker.read()
    assert assigned.args[0] == handle
    worker.send(T.WORK_COMPLETE, handle, b"done")
    return client.read().args[1]


@pytest.mark.timeout(120)
def test_redis_outage(servers: Callable[..., ServerProc]) -> None:
    redis = PrivateRedis()
    redis.start()
    try:
        args = ["-q", "redis", "--redis-server=127.0.0.1", f"--redis-port={redis.port}"]
        server = servers(args)
        check_outage(server, redis.stop, redis.start)
        # Redis here keeps nothing on disk, so what survives is what was written after
        # the restart of Redis: the job acknowledged after recovery, not the refused ones.
        server.restart()
        assert drain(server.port) == [b"after"]
    finally:
        redis.cleanup()


@pytest.mark.timeout(120)
def test_postgres_outage(servers: Callable[..., ServerProc]) -> None:
    pg = PrivatePostgres()
    try:
        pg.init()
        pg.start()
        # pg.stop is an immediate shutdown, a crash of PostgreSQL: only the
        # power level keeps what PostgreSQL had not flushed yet.
        args = ["-q", "postgres", f"--libpq-conninfo={pg.conninfo()}", "--durability=power"]
        server = servers(args)
        check_outage(server, pg.stop, pg.start)
        server.restart()
        assert sorted(drain(server.port)) == [b"after", b"before"]
    finally:
        pg.cleanup()


@pytest.mark.interop
@pytest.mark.timeout(60)
def test_runs_a_queue_written_by_gearmand(
    tmp_path: Path, servers: Callable[..., ServerProc]
) -> None:
    db = tmp_path / "gearmand.sqlite3"
    gearmand = serverproc.start_gearmand(["-q", "libsqlite3", f"--libsqlite3-db={db}"])
    try:
        for data, flag in ((b"one", "-L"), (b"two", "-I"), (b"three", "-b")):
            args = ["gearman", "-p", str(gearmand.port), "-f", "durable", "-b"]
            if flag != "-b":
                args.append(flag)
            subprocess.run([*args, data.decode()], check=True, timeout=10)
    finally:
        gearmand.stop()
        gearmand.cleanup()
    server = servers(["-q", "libsqlite3", f"--libsqlite3-db={db}"])
    assert drain(server.port) == [b"two", b"three", b"one"]  # high, normal, low


@pytest.mark.timeout(120)
def test_deletions_are_written_once_the_store_is_back(servers: Callable[..., ServerProc]) -> None:
    """A job that completes during an outage leaves the store when it returns,
    without a new submission to carry its deletion."""
    pg = PrivatePostgres()
    try:
        pg.init()
        pg.start()
        args = ["-q", "postgres", f"--libpq-conninfo={pg.conninfo()}", "--durability=power"]
        server = servers(args)
        client, worker = Wire(server.port, timeout=10), Wire(server.port, timeout=10)
        assert submit(client, T.SUBMIT_JOB_BG, b"finished in the outage").type == T.JOB_CREATED
        worker.send(T.CAN_DO, b"durable")
        worker.send(T.GRAB_JOB)
        handle = worker.read().args[0]
        pg.stop()
        worker.send(T.WORK_COMPLETE, handle, b"")
        time.sleep(0.5)  # the deletion fails: PostgreSQL is down
        pg.start()
        deadline = time.monotonic() + 30
        while stored_rows(pg.conninfo()):
            assert time.monotonic() < deadline, "the deletion was never written"
            time.sleep(0.2)
        client.close()
        worker.close()
    finally:
        pg.cleanup()


def stored_rows(conninfo: str) -> int:
    async def count() -> int:
        dsn, kwargs = conninfo_to_asyncpg(conninfo)
        conn = await asyncpg.connect(dsn, **kwargs)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM queue"))
        finally:
            await conn.close()

    return asyncio.run(count())
