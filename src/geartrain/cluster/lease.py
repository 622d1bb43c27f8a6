"""When this server may trust its lease, measured on its own clock.

The lease's expiry in the database is ``now() + ttl`` at the renewal; this
server counts from the moment it *sent* the renewal, so its own deadline is
never later than the database's, and it stops claiming a margin before
that: a paused or partitioned server gives up its work before the others
take it over.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Lease"]

TRUST = 0.8
"""Share of the lease's time this server relies on it after a renewal."""

RENEWALS = 5
"""Renewal attempts per lease time: a few lost round trips do not cost the lease."""

CALL_SHARE = 0.5
"""Share of the lease time a call to the store may take: a black-holed store is
noticed (a renewal fails) well before the lease runs out."""


class Lease:
    """This server's membership of the cluster: an id and a local deadline."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.server = 0  # the row id; a new one at every start and after a loss
        self.deadline = 0.0

    @property
    def interval(self) -> float:
        """Seconds between renewals (and sweeps for dead servers)."""
        return self.ttl / RENEWALS

    @property
    def call_timeout(self) -> float:
        """Seconds any call to the shared store may take."""
        return self.ttl * CALL_SHARE

    def granted(self, server: int, sent: float) -> None:
        """The database granted (or renewed) the lease asked for at ``sent``."""
        self.server = server
        self.deadline = sent + self.ttl * TRUST

    def lost(self) -> None:
        self.server = 0
        self.deadline = 0.0

    @property
    def valid(self) -> bool:
        return self.server != 0 and self.clock() < self.deadline
