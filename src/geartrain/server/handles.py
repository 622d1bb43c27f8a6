"""Job handles: ``<prefix>:<number>``, as gearmand makes them, or with an
unguessable suffix where the access rules hide some jobs' status."""

from __future__ import annotations

import os

__all__ = ["Handles"]

ENTROPY_DRAW = 4096
"""Bytes drawn from the OS's CSPRNG at a time: one system call per 512 handles."""


class Handles:
    """Mints this server's handles and never hands out a number it has seen."""

    __slots__ = ("prefix", "count", "random", "_entropy", "_entropy_at")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.encode() + b":"
        self.count = 0
        self.random = False  # add 64 random bits: a handle must not be guessable
        self._entropy = b""
        self._entropy_at = 0

    def new(self) -> bytes:
        self.count += 1
        handle = self.prefix + str(self.count).encode()
        if self.random:
            at = self._entropy_at
            if at + 8 > len(self._entropy):
                self._entropy, at = os.urandom(ENTROPY_DRAW), 0
            self._entropy_at = at + 8
            handle += b"-" + self._entropy[at : at + 8].hex().encode()
        return handle

    def restored(self, handle: bytes) -> bytes:
        """A kept handle (new numbers then go past it), or a new one if none was kept."""
        if not handle:
            return self.new()
        self.saw(handle)
        return handle

    def saw(self, handle: bytes) -> None:
        """A handle of ours from the store: never hand out its number again."""
        if handle.startswith(self.prefix):
            tail = handle[len(self.prefix) :].split(b"-", 1)[0]  # random suffix
            if tail.isdigit():
                self.count = max(self.count, int(tail))
