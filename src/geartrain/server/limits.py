"""Resource limits: their defaults, and how reaching one is counted and logged.

The limits themselves are plain fields of :class:`~.config.ServerConfig` (the
model is h11's: limits as arguments, with the reasoning beside the default);
the I/O layer and the core check them where the resource is spent.  Reaching a
limit is counted in :class:`~.jobs.Stats` and logged once per episode: the
first time, and again only after the limit has been clear for a while, so a
flood does not flood the log too.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Hashable
from typing import Final

__all__ = [
    "DEFAULT_MAX_INPUT_BYTES",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "EVENTS_PER_TURN",
    "FD_RESERVE",
    "LimitEpisode",
    "default_max_connections",
]

log = logging.getLogger("geartrain.server.limits")

DEFAULT_MAX_INPUT_BYTES = 1 << 30
"""Bytes received and not yet handled, across all connections (1 GiB): sixteen
packets of the largest size in flight at once.  Past it the connection holding
the most unhandled input is closed; input is only buffered for a packet that has
not fully arrived, so honest peers rarely hold much."""

DEFAULT_MAX_OUTPUT_BYTES = 256 << 20
"""Bytes queued for one peer that does not read (256 MiB): a few packets of the
largest size.  A peer over it is dropped (its jobs stay for other clients); below
it, a peer that stops reading is only paused (its requests are not read)."""

EVENTS_PER_TURN: Final = 128
"""Packets or admin lines handled from one connection before the event loop
serves the others: a pipelining or flooding peer waits its turn, so everyone
else's round trip stays short.  128 small packets take well under a millisecond."""

FD_RESERVE = 32
"""File descriptors kept free for the store, the log and the listeners when the
connection limit is derived from the process's open-file limit."""

EPISODE_GAP = 60.0
"""Seconds a limit must go unreached before reaching it again is logged again."""


def default_max_connections() -> int:
    """The open-file limit, less a reserve: past it accept() would fail anyway."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 31
    return max(1, soft - FD_RESERVE)


class LimitEpisode:
    """Logs a limit once per episode of it being reached; with ``key``, once per
    episode of each key (a limit that each function has on its own)."""

    __slots__ = ("message", "_last")

    def __init__(self, message: str) -> None:
        self.message = message
        self._last: dict[Hashable, float] = {}

    def reached(self, *args: object, key: Hashable = None) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is None or now - last >= EPISODE_GAP:
            log.warning(self.message, *args)
            if len(self._last) >= 4096:  # bounded, however many functions hit theirs
                self._last.clear()
        self._last[key] = now
