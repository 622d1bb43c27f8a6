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
import pwd
import shutil
import sys
import tempfile
from pathlib import Path

import machine
from cluster.stores import PostgresShared, RedisShared, SharedStore
from machine import (
    add_system_user,
    mount_small_disk,
    python_for,
    remove_system_user,
    unmount_small_disk,
)
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
            made for the run (removed after); the state directory is its home.
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
        """The SQLite queue's state directory (the user's home, with ``user``)."""
        self.state.mkdir()
        self.own_store = store_server is None and self.store_kind != "sqlite"
        self.store_server = store_server
        self.store: SharedStore | None = None
        self.want_proxy = proxy
        self.proxy: TcpProxy | None = None
        self.disk_mb = disk_mb
        self.disk: Path | None = None
        self.want_user = user
        self.user: pwd.struct_passwd | None = None
        self.python: list[str] = [sys.executable]
        self.server_args = server_args
        self.servers: list[ServerProc] = []

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(s.port for s in self.servers)

    async def start(self) -> Topology:
        if self.store_kind == "sqlite":
            if self.want_user:
                self.user = add_system_user()
                self.state = Path(self.user.pw_dir)
                self.python = python_for(self.user)
            if self.disk_mb:
                self.disk = self.state = mount_small_disk(f"{self.disk_mb}m")
            if self.user is not None:
                shutil.chown(self.state, self.user.pw_uid, self.user.pw_gid)
        else:
            if self.store_server is None:
                self.store_server = await asyncio.to_thread(start_store_server, self.store_kind)
            address: dict[str, object] = {"host": "127.0.0.1", "port": self.store_server.port}
            shared = getattr(self.store_server, "shared", None)  # replicas (tests/ha)
            if shared is not None:
                self.store = await asyncio.to_thread(shared)
            elif self.store_kind == "redis":
                self.store = RedisShared(address)
            else:
                address["user"] = "postgres"
                self.store = await asyncio.to_thread(PostgresShared, address)
            if self.want_proxy:
                self.proxy = await TcpProxy(*self.store.target).start()
        for i in range(self.count):
            port = free_port()
            self.servers.append(ServerProc("geartrain", self.argv(i, port), port))
        # From threads: starting waits for the server, and the proxy runs on this loop.
        await asyncio.gather(*(asyncio.to_thread(s.start, 60) for s in self.servers))
        return self

    def argv(self, i: int, port: int, as_user: bool = False) -> list[str]:
        """Server ``i``'s command line; with a user, started by root with ``--user``
        or (``as_user``) by the user itself."""
        args = ["--verbose", "INFO", *self.server_args]
        if self.store is not None:
            via = self.proxy.port if self.proxy is not None and i == 0 else None
            args += self.store.flags(via)
        if self.cluster:
            args += ["--cluster", "--cluster-lease", str(LEASE)]
        command = [*self.python, *geartrain_argv(port, args)[1:]]
        if self.user is None:
            return ["env", f"XDG_STATE_HOME={self.state}", *command]
        # The default queue in the user's home, whoever starts the server.
        env = ["env", "-u", "XDG_STATE_HOME", f"HOME={self.state}"]
        if as_user:
            return ["setpriv", *machine.as_user(self.user), *env, *command]
        return [*env, *command, "--user", self.user.pw_name]

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
        if self.disk is not None:
            unmount_small_disk(self.disk)
        if self.user is not None:
            remove_system_user(self.user)
        shutil.rmtree(self.work, ignore_errors=True)
