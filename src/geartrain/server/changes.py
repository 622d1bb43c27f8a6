"""Changes to a set kept by handle beside the queue (the failed-job set, the kept
results), waiting for the store writer's next round.

Only the latest change of each handle is written; a round that fails gives its
changes back, unless newer ones replaced them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

__all__ = ["KeyedChanges"]


class Keyed(Protocol):
    @property
    def handle(self) -> bytes: ...


R = TypeVar("R", bound=Keyed)


class KeyedChanges(Generic[R]):
    """Records to store and handles to delete; ``write`` is the store's method."""

    def __init__(self, write: Callable[[Sequence[R], Sequence[bytes]], Awaitable[None]]) -> None:
        self.write = write
        self.added: dict[bytes, R] = {}
        self.removed: set[bytes] = set()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)

    def __len__(self) -> int:
        return len(self.added) + len(self.removed)

    def note(self, added: Iterable[R], removed: Iterable[bytes]) -> None:
        for handle in removed:
            self.added.pop(handle, None)
            self.removed.add(handle)
        for record in added:
            self.removed.discard(record.handle)
            self.added[record.handle] = record

    async def flush(self) -> None:
        """Write what is noted; on failure keep it for the next round and raise."""
        added, self.added = self.added, {}
        removed, self.removed = self.removed, set()
        try:
            await self.write(list(added.values()), list(removed))
        except Exception:
            for handle, record in added.items():
                if handle not in self.removed:
                    self.added.setdefault(handle, record)
            self.removed |= removed - set(self.added)
            raise
