"""Cluster fixtures: a PostgreSQL database of the test's own, and cluster members."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import asyncpg  # type: ignore[import-untyped]
import pytest

import serverproc
from serverproc import ServerProc
from store.conftest import PG, run_in_thread, unique_name

LEASE = 3.0
"""Seconds of a test server's lease: takeover within about this plus one sweep."""


@pytest.fixture
def cluster_conninfo() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the test."""
    name = unique_name("gt_cluster")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(database="test", **PG)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_in_thread(run(f"CREATE DATABASE {name}"))
    yield f"host={PG['host']} port={PG['port']} user={PG['user']} dbname={name}"
    run_in_thread(run(f"DROP DATABASE {name} WITH (FORCE)"))


StartMember = Callable[..., ServerProc]


@pytest.fixture
def start_member(cluster_conninfo: str) -> Iterator[StartMember]:
    """Start servers of one cluster (``conninfo=`` points one elsewhere, e.g. a proxy)."""
    started: list[ServerProc] = []

    def start(*args: str, conninfo: str = cluster_conninfo, port: int | None = None) -> ServerProc:
        argv = ["-q", "postgres", "--libpq-conninfo", conninfo, "--cluster"]
        argv += ["--cluster-lease", str(LEASE), "--verbose", "INFO", *args]
        server = serverproc.start_geartrain(argv, port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.cleanup()
