"""Replicated stores of the tests' own: a PostgreSQL primary with a streaming
standby, made with initdb and pg_basebackup in temporary directories on free
ports (never the machine's shared instance), and its failover as an operator
does it: the primary killed (SIGKILL), the standby promoted by hand.
"""

from __future__ import annotations

import contextlib
import subprocess
import time

import asyncpg  # type: ignore[import-untyped]

from cluster.stores import PostgresShared
from geartrain.cluster.backend import ClusterBackend
from geartrain.cluster.postgres import PostgresCluster
from store.conftest import run_in_thread, unique_name
from store.dbservers import PrivatePostgres

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
