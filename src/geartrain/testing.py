"""pytest fixtures: a geartrain server in the test process, a client and a worker.

The plugin is registered with pytest when geartrain is installed (the
``pytest11`` entry point), so a test suite only names the fixtures::

    def test_resize(gearman_sync_worker, gearman_sync_client):
        @gearman_sync_worker.register
        def resize(job):
            return {"width": job.value["width"] // 2}

        assert gearman_sync_client.submit("resize", {"width": 640}) == {"width": 320}

- ``gearman_server``: a :class:`~geartrain.embedded.EmbeddedServer` on a thread
  of its own, with the memory queue on a free loopback port, new for each test;
  ``.address`` is where it listens.  Override ``gearman_server_options`` to
  start it otherwise, e.g. ``{"sqlite": True}`` or ``{"settings": "settings.toml"}``.
- ``gearman_sync_client``, ``gearman_sync_worker``: a :mod:`geartrain.sync`
  client and a running worker connected to it; functions registered on the
  worker in the test take jobs at once.
- ``gearman_client``, ``gearman_worker``: the asyncio ones, for ``async def``
  tests (with pytest-asyncio installed).

The server runs on a thread of its own, so one works for sync and async tests
alike, and anything that speaks Gearman (a PHP worker, the C tools) reaches it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported by the fixtures: a test run that uses none loads nothing more
    from . import sync
    from .client import Client
    from .embedded import EmbeddedServer
    from .worker import Worker

__all__ = [
    "gearman_client",
    "gearman_server",
    "gearman_server_options",
    "gearman_sync_client",
    "gearman_sync_worker",
    "gearman_worker",
]


@pytest.fixture
def gearman_server_options() -> dict[str, Any]:
    """The arguments of ``gearman_server``'s :class:`~geartrain.embedded.EmbeddedServer`."""
    return {}


@pytest.fixture
def gearman_server(gearman_server_options: dict[str, Any]) -> Iterator[EmbeddedServer]:
    """A geartrain server in this process, stopped after the test."""
    from .embedded import EmbeddedServer

    with EmbeddedServer(**gearman_server_options) as server:
        yield server


@pytest.fixture
def gearman_sync_client(gearman_server: EmbeddedServer) -> Iterator[sync.Client]:
    """A blocking client of ``gearman_server``."""
    from . import sync

    with sync.Client(gearman_server.address) as client:
        yield client


@pytest.fixture
def gearman_sync_worker(gearman_server: EmbeddedServer) -> Iterator[sync.Worker]:
    """A blocking worker of ``gearman_server``, working; register functions on it."""
    from . import sync

    with sync.Worker(gearman_server.address) as worker:
        yield worker
        worker.stop(graceful=False)


try:
    import pytest_asyncio
except ImportError:  # the asyncio fixtures need it
    pass
else:

    @pytest_asyncio.fixture
    async def gearman_client(gearman_server: EmbeddedServer) -> AsyncIterator[Client]:
        """An asyncio client of ``gearman_server``, on the test's event loop."""
        from .client import Client

        async with Client(gearman_server.address) as client:
            yield client

    @pytest_asyncio.fixture
    async def gearman_worker(gearman_server: EmbeddedServer) -> AsyncIterator[Worker]:
        """An asyncio worker of ``gearman_server``, working on the test's event loop;
        register functions on it."""
        from .worker import Worker

        async with Worker(gearman_server.address) as worker:
            yield worker
            worker.stop(graceful=False)
