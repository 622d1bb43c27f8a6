"""Replicated stores of the tests' own, on free ports in temporary directories
(never the machine's shared services), and their failover:

- a PostgreSQL primary with a streaming standby (initdb, pg_basebackup -R); the
  primary killed (SIGKILL), the standby promoted by hand, as an operator does;
- a Redis primary (fsync-always AOF) with replicas (one by default) and three Sentinels; the
  primary killed, the Sentinels promote a replica by themselves.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from cluster.stores import PostgresShared, RedisShared
from geartrain.cluster.backend import ClusterBackend
from geartrain.cluster.postgres import PostgresCluster
from geartrain.cluster.redis import RedisCluster
from geartrain.store.options import store_from_url
from geartrain.store.redis import RedisStore
from serverproc import free_port
from store.conftest import run_in_thread, unique_name
from store.dbservers import PrivatePostgres, PrivateRedis, _wait_port

HOST = "127.0.0.1"


class PostgresReplicas:
    """A primary and a standby that streams from it.

    Args:
        sync: the primary waits for the standby (``synchronous_standby_names``)
            before a commit that asks for it (``synchronous_commit`` on or
            ``remote_write``) returns.
    """

    def __init__(self, sync: bool = True) -> None:
        self.sync = sync
        self.primary = PrivatePostgres()
        self.standby = PrivatePostgres()
        self.promoted = False

    @property
    def ports(self) -> tuple[int, int]:
        """The primary's port first, as the store URL names them."""
        return self.primary.port, self.standby.port

    @property
    def port(self) -> int:
        """Where writes go now."""
        return self.standby.port if self.promoted else self.primary.port

    def start(self) -> PostgresReplicas:
        p, s = self.primary, self.standby
        p.init()
        with (p.data / "postgresql.conf").open("a") as conf:
            conf.write("wal_keep_size = '256MB'\n")
        p.start()
        p.create_database("test")
        s.data.parent.mkdir(exist_ok=True)
        s._run(
            str(s.bin / "pg_basebackup"),
            *("-h", HOST, "-p", str(p.port), "-U", "postgres"),
            *("-D", str(s.data), "-R", "-X", "stream", "-c", "fast"),
        )
        s.start()
        if self.sync:
            # Only now: with no standby connected, every commit would wait.
            self._sql(p.port, "ALTER SYSTEM SET synchronous_standby_names = '*'")
            self._sql(p.port, "SELECT pg_reload_conf()")
        self._wait_streaming()
        return self

    def _wait_streaming(self, timeout: float = 30.0) -> None:
        want = "sync" if self.sync else "async"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._sql(self.primary.port, "SELECT sync_state FROM pg_stat_replication") == want:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the standby did not start streaming ({want}) in {timeout} s")

    def _sql(self, port: int, query: str) -> str:
        out = subprocess.run(
            [str(self.primary.bin / "psql"), "-h", HOST, "-p", str(port), "-U", "postgres"]
            + ["-d", "postgres", "-Atc", query],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip()

    def behind(self) -> int | None:
        """Bytes of WAL the standby has not yet written (None: not streaming)."""
        out = self._sql(
            self.primary.port,
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn) FROM pg_stat_replication",
        )
        return int(float(out)) if out else None

    def kill_primary(self) -> None:
        """SIGKILL to the primary's every process: what it had not sent is lost."""
        self.primary.kill()

    def promote(self) -> None:
        """``pg_ctl promote``, and wait until the standby takes writes."""
        s = self.standby
        s._run(str(s.bin / "pg_ctl"), "-D", str(s.data), "-w", "promote")
        self.promoted = True

    def conninfo(self, dbname: str) -> str:
        """libpq's multi-host URL: the primary, then the standby; writes go to
        whichever is not read-only."""
        hosts = ",".join(f"{HOST}:{port}" for port in self.ports)
        return f"postgresql://postgres@{hosts}/{dbname}?target_session_attrs=read-write"

    def shared(self) -> ReplicatedPostgres:
        return ReplicatedPostgres(self)

    def cleanup(self) -> None:
        for server in (self.standby, self.primary):
            with contextlib.suppress(Exception):
                server.cleanup()


class ReplicatedPostgres(PostgresShared):
    """A database of one test on the replicas, named to the servers by the
    multi-host URL."""

    def __init__(self, replicas: PostgresReplicas) -> None:
        self.replicas = replicas
        self.target = (HOST, replicas.port)
        self.database = unique_name("gt_ha")
        run_in_thread(self._run(f"CREATE DATABASE {self.database}"))

    @property  # type: ignore[override]
    def address(self) -> dict[str, object]:
        """The primary of the moment, for the test's own statements."""
        return {"host": HOST, "port": self.replicas.port, "user": "postgres"}

    def flags(self, port: int | None = None) -> list[str]:
        return ["-q", "postgres", "--libpq-conninfo", self._conninfo(port)]

    def _conninfo(self, port: int | None = None) -> str:
        return self.replicas.conninfo(self.database)

    def backend(self, port: int | None = None) -> ClusterBackend:
        return PostgresCluster(self._conninfo(), "queue")

    async def _run(self, sql: str) -> None:
        conn = await asyncpg.connect(database="test", **self.address)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


MASTER = "gt"
"""The name the Sentinels know the master by."""


class RedisSentinels:
    """A Redis primary, replicas of it and three Sentinels watching them.

    Args:
        wait: the servers' URL asks for ``WAIT`` on a replica after each write.
        replicas: how many.
    """

    DOWN_AFTER_MS = 1000
    """How long the primary must be silent before a Sentinel thinks it down."""

    def __init__(self, wait: bool = True, replicas: int = 1) -> None:
        self.wait = wait
        self.primary = PrivateRedis(appendonly=True)
        self.replicas = [PrivateRedis(appendonly=True) for _ in range(replicas)]
        self.master = self.primary
        self.dir = Path(tempfile.mkdtemp(prefix="gt-sentinel-"))
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.promoted = False

    @property
    def port(self) -> int:
        """Where writes go now."""
        return self.master.port

    def start(self) -> RedisSentinels:
        self.primary.start()
        for replica in self.replicas:
            replica.start()
            self._cli(replica.port, "REPLICAOF", HOST, str(self.primary.port))
            self._wait(lambda r=replica: "master_link_status:up" in self._cli(r.port, "INFO"))
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind {HOST}\ndir {self.dir}\n"
                f"sentinel monitor {MASTER} {HOST} {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {self.DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
            )
            self.sentinels.append(
                subprocess.Popen(
                    ["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL
                )
            )
            _wait_port(port)
        # Each Sentinel has found the replica and the others (they vote together).
        self._wait(lambda: all(self._sentinel_sees(port) for port in self.sentinel_ports))
        return self

    def _sentinel_sees(self, port: int) -> bool:
        info = self._cli(port, "SENTINEL", "MASTER", MASTER).split()
        fields = dict(zip(info[::2], info[1::2], strict=False))
        replicas = str(len(self.replicas))
        return fields.get("num-slaves") == replicas and fields.get("num-other-sentinels") == "2"

    def _cli(self, port: int, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-h", HOST, "-p", str(port), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout

    def _wait(self, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Redis replicas were not ready within {timeout} s")

    def behind(self) -> int | None:
        """Bytes of the replication stream the replica has not acknowledged."""
        info = dict(
            line.split(":", 1)
            for line in self._cli(self.primary.port, "INFO", "replication").splitlines()
            if ":" in line
        )
        replica = info.get("slave0")
        if replica is None:
            return None
        fields = dict(item.split("=", 1) for item in replica.strip().split(","))
        return int(info["master_repl_offset"]) - int(fields["offset"])

    def kill_primary(self) -> None:
        self.primary.kill()

    def promote(self) -> None:
        """Wait: the Sentinels promote a replica.  Then the old primary comes back,
        and the Sentinels make it a replica of the new one: with a single replica,
        until then there is none for ``WAIT`` (the servers refuse with it)."""
        by_port = {r.port: r for r in self.replicas}

        def promoted() -> bool:
            answer = self._cli(
                self.sentinel_ports[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER
            )
            port = int(answer.split()[1]) if len(answer.split()) == 2 else 0
            if port in by_port and "role:master" in self._cli(port, "INFO", "replication"):
                self.master = by_port[port]
                return True
            return False

        self._wait(promoted, timeout=60.0)
        self.promoted = True
        self.primary.start()

    def url(self, prefix: str) -> str:
        sentinels = ",".join(f"{HOST}:{port}" for port in self.sentinel_ports)
        wait = "&wait_replicas=1&wait_timeout_ms=2000" if self.wait else ""
        return f"redis+sentinel://{sentinels}/{MASTER}?prefix={prefix}{wait}"

    def shared(self) -> ReplicatedRedis:
        return ReplicatedRedis(self)

    def cleanup(self) -> None:
        for proc in self.sentinels:
            proc.kill()
            proc.wait(10)
        for server in (*self.replicas, self.primary):
            server.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


class ReplicatedRedis(RedisShared):
    """A key prefix of one test, named to the servers by a ``redis+sentinel`` URL."""

    def __init__(self, replicas: RedisSentinels) -> None:
        self.replicas = replicas
        self.target = (HOST, replicas.port)
        self.prefix = unique_name("gt_ha") + ":"

    @property  # type: ignore[override]
    def address(self) -> dict[str, object]:
        return {"host": HOST, "port": self.replicas.port}

    def flags(self, port: int | None = None) -> list[str]:
        return ["--store-url", self.replicas.url(self.prefix)]

    def backend(self, port: int | None = None) -> ClusterBackend:
        store = store_from_url(self.replicas.url(self.prefix))
        assert isinstance(store, RedisStore)
        return RedisCluster(store)
