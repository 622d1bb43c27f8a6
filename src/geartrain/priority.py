"""Job priorities (apart from the client so the command-line tools load it alone)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Priority"]


class Priority(StrEnum):
    """Job priority: the server hands out HIGH before NORMAL before LOW."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def level(self) -> int:
        """gearmand's number for it (0 high, 1 normal, 2 low), which its queue
        tables store and the server indexes its queues by."""
        return _LEVELS[self]

    @classmethod
    def of_level(cls, level: int) -> Priority:
        """The priority of a level; anything but 0 and 2 is normal, as gearmand reads it."""
        return _BY_LEVEL.get(level, Priority.NORMAL)


_LEVELS = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}
_BY_LEVEL = {level: priority for priority, level in _LEVELS.items()}
