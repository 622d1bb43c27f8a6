"""Who did what to the jobs: every operator action, in one bounded list and the log.

The console's actions, the admin protocol's failed-set commands and pausing a
function all record here, with who asked (a token identity or an address) and
how many jobs the action touched."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["DEFAULT_SIZE", "Audit", "Entry", "who"]

log = logging.getLogger("geartrain.server.audit")

DEFAULT_SIZE = 10_000


def who(identity: str | None, address: str, via: str) -> str:
    """Who acted, for the audit list and the log: the access rules' identity (None
    without rules) at the address, and how it came ("console", "admin")."""
    if identity is None:
        return f"{address} ({via})"
    return f"{identity} at {address} ({via})"


class Entry(NamedTuple):
    at: float
    """Epoch seconds."""
    who: str
    action: str
    target: str
    touched: int


class Audit:
    """The last ``size`` actions, newest last; ``clock`` gives epoch seconds."""

    def __init__(self, clock: Callable[[], float], size: int = DEFAULT_SIZE) -> None:
        self.clock = clock
        self.entries: deque[Entry] = deque(maxlen=size)

    def record(
        self, who: str, action: str, target: str, touched: int, logged: bool = False
    ) -> Entry:
        """Note an action: ``target`` names what it acted on (a handle, a function,
        a filter), ``touched`` how many jobs it changed; ``logged`` if the caller
        has logged it already."""
        entry = Entry(self.clock(), who, action, target, touched)
        self.entries.append(entry)
        if not logged:
            log.info("Audit: %s %s %s (%d job(s))", who, action, target, touched)
        return entry

    def __len__(self) -> int:
        return len(self.entries)

    def newest(self, offset: int, limit: int) -> list[Entry]:
        """A page of entries, newest first."""
        entries = self.entries
        n = len(entries)
        # deque indexing from the right end is cheap for the newest pages.
        return [entries[n - 1 - i] for i in range(offset, min(n, offset + limit))]
