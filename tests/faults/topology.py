"""The servers and the store a fault run works on.

``single-sqlite`` is one server on its default queue (SQLite in its state
directory); ``single-redis`` and ``single-postgres`` one server on a private
Redis (AOF, fsync always) or PostgreSQL (initdb in a temporary directory);
``cluster-redis`` and ``cluster-postgres`` members with ``--cluster`` on such a
store.  Never the machine's shared services: a fault may kill the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from cluster.stores import PostgresShared, RedisShared, SharedStore
from serverproc import ServerProc, free_port, geartrain_argv
from store.dbservers import PrivatePostgres, PrivateRedis
from store.proxy import TcpProxy

TOPOLOGIES = (
    "single-sqlite",
    "single-redis",
    "single-postgres",
    "cluster-postgres",
    "cluster-redis",
)
LEASE = 3.0
"""``--cluster-lease`` of the members: takeover about this long after a member stops."""

StoreServer = PrivateRedis | PrivatePostgres


def start_store_server(kind: str) -> StoreServer:
    """A private Redis (``redis``) or PostgreSQL (``postgres``), started."""
    if kind == "redis":
        redis = PrivateRedis(appendonly=True)
        redis.start()
        return redis
    pg = PrivatePostgres()
    pg.init()
    pg.start()
    pg.create_database("test")  # where stores.PostgresShared creates its databases
    return pg


def stop_store_server(server: StoreServer) -> None:
    if isinstance(server, PrivateRedis):
        server.stop()
    else:
        server.cleanup()


class Topology:
    """Servers (``servers[0]`` is the one a fault on one member hits) and their store.

    Args:
        name: one of :data:`TOPOLOGIES`.
        members: servers of a cluster topology.
        store_server: a started private store to use (else one of its own).
        proxy: reach the store through a proxy that a fault can cut (the single
            server, or the first member).
        disk_mb: put the SQLite state directory on a tmpfs of this many MiB.
        user: start the server as root with ``--user`` of an unprivileged user
            made for the run (removed after), whose home is the state directory.
        server_args: more flags for every server.
    """

    def __init__(
        self,
        name: str,
        *,
        members: int = 2,
        store_server: StoreServer | None = None,
        proxy: bool = False,
        disk_mb: int = 0,
        user: bool = False,
        server_args: tuple[str, ...] = (),
    ) -> None:
        if name not in TOPOLOGIES:
            raise ValueError(f"unknown topology {name!r}")
        self.name = name
        self.cluster = name.startswith("cluster-")
        self.store_kind = name.split("-")[1]
        self.count = members if self.cluster else 1
        self.work = Path(tempfile.mkdtemp(prefix="gt-faults-"))
        self.state = self.work / "state"
        self.own_store = store_server is None and self.store_kind != "sqlite"
        self.store_server = store_server
        self.store: SharedStore | None = None
        self.want_proxy = proxy
        self.proxy: TcpProxy | None = None
        self.disk_mb = disk_mb
        self.mounted = False
        self.user = f"gt-faults-{os.getpid()}" if user else None
        self.work.chmod(0o755)  # the user's way to its home
        self.server_args = server_args
        self.servers: list[ServerProc] = []

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(s.port for s in self.servers)

    async def start(self) -> Topology:
        if self.store_kind == "sqlite":
            self.state.mkdir(mode=0o755)
            if self.disk_mb:
                mount = ["mount", "-t", "tmpfs", "-o", f"size={self.disk_mb}m", "tmpfs"]
                subprocess.run([*mount, str(self.state)], check=True)
                self.mounted = True
            if self.user:
                subprocess.run(
                    ["useradd", "--system", "--no-create-home", "--home-dir", str(self.state)]
                    + ["--shell", "/usr/sbin/nologin", "--user-group", self.user],
                    check=True,
                )
                shutil.chown(self.state, self.user, self.user)
        else:
            if self.store_server is None:
                self.store_server = await asyncio.to_thread(start_store_server, self.store_kind)
            address: dict[str, object] = {"host": "127.0.0.1", "port": self.store_server.port}
            if self.store_kind == "redis":
                self.store = RedisShared(address)
            else:
                address["user"] = "postgres"
                self.store = await asyncio.to_thread(PostgresShared, address)
            if self.want_proxy:
                self.proxy = await TcpProxy(*self.store.target).start()
        for i in range(self.count):
            self.servers.append(self._server(i))
        # From threads: starting waits for the server, and the proxy runs on this loop.
        await asyncio.gather(*(asyncio.to_thread(s.start, 60) for s in self.servers))
        return self

    def _server(self, i: int) -> ServerProc:
        args = ["--verbose", "INFO", *self.server_args]
        if self.store is not None:
            via = self.proxy.port if self.proxy is not None and i == 0 else None
            args += self.store.flags(via)
        if self.cluster:
            args += ["--cluster", "--cluster-lease", str(LEASE)]
        port = free_port()
        env = dict(os.environ, XDG_STATE_HOME=str(self.state))
        if self.user:
            # The default queue in the user's home, whoever opens it.
            env.pop("XDG_STATE_HOME")
            env["HOME"] = str(self.state)
            args += ["--user", self.user]
        return ServerProc("geartrain", geartrain_argv(port, args), port, env=env)

    def as_user(self, server: ServerProc, direct: bool) -> None:
        """Next start: as the user itself (``direct``), or as root with ``--user``."""
        assert self.user is not None
        server.user = self.user if direct else None
        if direct:
            server.argv = server.argv[: server.argv.index("--user")]
        elif "--user" not in server.argv:
            server.argv += ["--user", self.user]

    def logs(self) -> dict[int, str]:
        return {s.port: s.log() for s in self.servers}

    async def stop(self) -> None:
        for server in self.servers:
            server.cleanup()
        if self.proxy is not None:
            await self.proxy.stop()
        if self.store is not None:
            with contextlib.suppress(Exception):  # the store may be down after a failure
                await asyncio.to_thread(self.store.cleanup)
        if self.own_store and self.store_server is not None:
            await asyncio.to_thread(stop_store_server, self.store_server)
        if self.mounted:
            subprocess.run(["umount", str(self.state)], check=True)
        if self.user:
            subprocess.run(["userdel", self.user], check=True)
        shutil.rmtree(self.work, ignore_errors=True)
