"""Paused functions: an operator's hold on a function's queue.

While a function is paused its submissions are still accepted and
acknowledged and its jobs stay queued (retries and epoch jobs that fall due
queue up too), but no worker is handed one and no sleeping worker is woken
for it; jobs already running finish.  Resuming wakes its sleeping workers at
once.  The hold is on the name, so it outlives the function's entry in the
table (an idle function may be forgotten and made again).  The rule itself is
read where jobs are handed out (:mod:`.queues`) from ``Function.paused``,
which this room alone sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .model import Function

__all__ = ["Pauses"]


class Pauses:
    """The paused function names, and the flag on each known function."""

    __slots__ = ("names", "functions", "wake")

    def __init__(self, functions: dict[bytes, Function], wake: Callable[[Function], None]) -> None:
        self.names: set[bytes] = set()  # shared with the table, which marks new functions
        self.functions = functions
        self.wake = wake  # called for each resumed function the table knows

    def __contains__(self, name: bytes) -> bool:
        return name in self.names

    def listed(self) -> list[bytes]:
        """The paused names, sorted."""
        return sorted(self.names)

    def pause(self, name: bytes) -> bool:
        """Hold ``name``'s jobs; False if it was paused already."""
        if name in self.names:
            return False
        self.names.add(name)
        f = self.functions.get(name)
        if f is not None:
            f.paused = True
        return True

    def resume(self, name: bytes) -> bool:
        """Let workers have ``name``'s jobs again; False if it was not paused."""
        if name not in self.names:
            return False
        self.names.discard(name)
        f = self.functions.get(name)
        if f is not None:
            f.paused = False
            self.wake(f)
        return True

    def replace(self, names: Iterable[bytes]) -> tuple[list[bytes], list[bytes]]:
        """Make exactly ``names`` paused (as a store or the cluster keeps them);
        returns (newly paused, resumed)."""
        wanted = set(names)
        paused = sorted(n for n in wanted if self.pause(n))
        resumed = sorted(n for n in list(self.names - wanted) if self.resume(n))
        return paused, resumed
