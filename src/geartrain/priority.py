"""Job priorities (apart from the client so the command-line tools load it alone)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Priority"]


class Priority(StrEnum):
    """Job priority: the server hands out HIGH before NORMAL before LOW."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"
