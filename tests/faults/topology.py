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
import sys
import sysconfig
import tempfile
from pathlib import Path

import geartrain
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
        self.mounts: list[Path] = []
        self.user = f"gt-faults-{os.getpid()}" if user else None
        self.user_made = False
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
                self._mount(self.state, "-t", "tmpfs", "-o", f"size={self.disk_mb}m", "tmpfs")
            if self.user:
                self._make_user(self.user)
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

    def _mount(self, where: Path, *args: str) -> None:
        where.mkdir(exist_ok=True)
        subprocess.run(["mount", *args, str(where)], check=True)
        self.mounts.append(where)

    def _make_user(self, name: str) -> None:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", str(self.state)]
            + ["--shell", "/usr/sbin/nologin", "--user-group", name],
            check=True,
        )
        self.user_made = True
        shutil.chown(self.state, name, name)
        # The interpreter may live where the user cannot go (root's home): the user
        # runs it through a read-only bind mount, with this environment's packages.
        self._mount(self.work / "python", "--bind", "-o", "ro", sys.base_prefix)

    def _server(self, i: int) -> ServerProc:
        args = ["--verbose", "INFO", *self.server_args]
        if self.store is not None:
            via = self.proxy.port if self.proxy is not None and i == 0 else None
            args += self.store.flags(via)
        if self.cluster:
            args += ["--cluster", "--cluster-lease", str(LEASE)]
        port = free_port()
        argv = geartrain_argv(port, args)
        env = dict(os.environ, XDG_STATE_HOME=str(self.state))
        if self.user:
            # The default queue in the user's home, whoever opens it.
            del env["XDG_STATE_HOME"]
            env["HOME"] = str(self.state)
            python = self.work / "python"
            argv[0] = str(python / "bin" / "python{}.{}".format(*sys.version_info))
            env["LD_LIBRARY_PATH"] = str(python / "lib")  # before its RUNPATH under /root
            code = Path(geartrain.__file__).parents[1]
            env["PYTHONPATH"] = os.pathsep.join([str(code), sysconfig.get_paths()["purelib"]])
            argv += ["--user", self.user]
        return ServerProc("geartrain", argv, port, env=env)

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
            await asyncio.to_thread(self.store_server.cleanup)
        for where in reversed(self.mounts):
            subprocess.run(["umount", str(where)], check=True)
        if self.user_made:
            subprocess.run(["userdel", str(self.user)], check=True)
        shutil.rmtree(self.work, ignore_errors=True)
