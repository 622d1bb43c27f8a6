"""Cluster fixtures: the shared store of the test's own (a PostgreSQL database or a
Redis key prefix; every cluster test runs on both), and cluster members."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import serverproc
from serverproc import ServerProc
from store.conftest import database_services  # noqa: F401  (the services, here too)

from .stores import PostgresShared, RedisShared, SharedStore

LEASE = 3.0
"""Seconds of a test server's lease: takeover within about this plus one sweep."""


@pytest.fixture(params=[PostgresShared, RedisShared], ids=["postgres", "redis"])
def shared_store(request: pytest.FixtureRequest) -> Iterator[SharedStore]:
    """A fresh PostgreSQL database or Redis key prefix, removed after the test."""
    store: SharedStore = request.param()
    yield store
    store.cleanup()


StartMember = Callable[..., ServerProc]


@pytest.fixture
def start_member(shared_store: SharedStore) -> Iterator[StartMember]:
    """Start servers of one cluster (``via=PORT`` reaches the store through a proxy)."""
    started: list[ServerProc] = []

    def start(*args: str, via: int | None = None, port: int | None = None) -> ServerProc:
        argv = [*shared_store.flags(via), "--cluster"]
        argv += ["--cluster-lease", str(LEASE), "--verbose", "INFO", *args]
        server = serverproc.start_geartrain(argv, port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.cleanup()
