"""Giving memory back once a busy spell is over.

CPython frees objects into glibc's heap, and the server's mallopt settings
(cli/server.py) keep freed memory there for speed, so after a burst of large
jobs the process would stay at its peak size.  Once the server has read
nothing for :data:`IDLE_AFTER` seconds after being busy, this releases idle
connections' receive buffers and asks glibc to return free heap pages to the
system (``malloc_trim``); elsewhere it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import time
from collections.abc import Callable
from typing import Any

from ..protocol import drop_pieces
from .network import Network

__all__ = ["IDLE_AFTER", "IdleTrimmer", "malloc_trim"]

log = logging.getLogger("geartrain.server.memory")

IDLE_AFTER = 2.0
"""Seconds without a read that count as idle: long enough to skip the gaps of
a busy server, short enough that memory comes back while an operator watches."""

CHECK_EVERY = 1.0


def _find_malloc_trim() -> Callable[[int], Any] | None:
    try:
        trim: Callable[[int], Any] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_malloc_trim = _find_malloc_trim()


def malloc_trim() -> bool:
    """Return free heap memory to the system; False where the C library cannot."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


class IdleTrimmer:
    """Watches a :class:`~.network.Network`'s reads; trims once after each busy spell."""

    def __init__(self, network: Network, idle_after: float = IDLE_AFTER) -> None:
        self.network = network
        self.idle_after = idle_after
        self.trims = 0
        self._reads = network.reads
        self._busy = False
        self._quiet_since = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(CHECK_EVERY, self._check, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        reads = self.network.reads
        if reads != self._reads:
            self._reads = reads
            self._busy = True
            self._quiet_since = now
        elif self._busy and now - self._quiet_since >= self.idle_after:
            self._busy = False
            self.trim()
        self.start(loop)

    def trim(self) -> None:
        released = self.network.release_idle_buffers()
        drop_pieces()  # the large packets' kept pieces
        malloc_trim()
        self.trims += 1
        log.debug("Idle: released %d receive buffer(s) and trimmed the heap", released)
