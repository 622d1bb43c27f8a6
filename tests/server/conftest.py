"""The core's fixtures: a manual clock and a server core on it."""

from __future__ import annotations

import pytest

from geartrain.server.core import JobServer

from .harness import Clock, make


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock) -> JobServer:
    return make(clock)
