"""Fixtures that start real servers.  See serverproc.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import serverproc
from serverproc import ServerProc

SERVER_KINDS = ["geartrain", "gearmand"]


@pytest.fixture
def geartrain() -> Iterator[ServerProc]:
    """A `geartrain server` with the in-memory queue on a free port."""
    server = serverproc.start_geartrain()
    yield server
    server.cleanup()


@pytest.fixture
def gearmand() -> Iterator[ServerProc]:
    """Debian's gearmand 1.1 on a free port."""
    server = serverproc.start_gearmand()
    yield server
    server.cleanup()


@pytest.fixture(params=SERVER_KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProc]:
    """The same test against geartrain and against gearmand."""
    srv = serverproc.start(request.param)
    yield srv
    srv.cleanup()


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProc]]:
    """Factory: ``start_server(kind, args=[...])``; everything started is stopped after."""
    started: list[ServerProc] = []

    def start(
        kind: str = "geartrain",
        args: Any = (),
        port: int | None = None,
        tls: bool = False,
        ready: bool = True,
    ) -> ServerProc:
        srv = serverproc.start(kind, args, port, tls, ready)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.cleanup()
