"""Fixtures of the end-to-end tests that restart a server on a durable queue."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from serverproc import ServerProc, start_geartrain
from wire import HOST


@pytest.fixture(params=["sqlite", "redis"])
def durable_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """The server's arguments for a queue that outlives it: SQLite in the test's
    directory, or Redis under a key prefix of the test's own (removed after)."""
    if request.param == "sqlite":
        yield ["-q", "libsqlite3", "--libsqlite3-db", str(tmp_path / "queue.sqlite3")]
        return
    prefix = f"gt_test_{uuid.uuid4().hex[:8]}:"
    yield ["-q", "redis", "--redis-server", HOST, "--redis-prefix", prefix]
    client = redis.Redis(host=HOST)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def restartable() -> Iterator[Callable[[list[str]], ServerProc]]:
    """Start geartrain with these arguments; a second call stops the server
    started before and starts the new one on its port (a restart)."""
    servers: list[ServerProc] = []

    def start(args: list[str]) -> ServerProc:
        port = servers[-1].port if servers else None
        if servers:
            servers[-1].stop()
        servers.append(start_geartrain(args, port))
        return servers[-1]

    yield start
    for server in servers:
        server.cleanup()
