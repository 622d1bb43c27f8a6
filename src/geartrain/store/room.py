"""Room on the queue's disk: how much a store keeps free, and what a full disk raises.

A full disk must never keep the queue from shrinking.  Deleting rows writes
SQLite's write-ahead log, and a checkpoint copies that log back into the file,
so even a deletion needs some room.  So the SQLite store refuses new jobs
while they would leave less than :data:`RESERVE_BYTES` free on its filesystem,
and spends that reserve only on what shrinks the queue: deletions, and the
checkpoints that then free the queue log's files.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from . import StoreError, StoreFull

__all__ = ["RESERVE_BYTES", "check_room", "disk_full", "failure", "free_bytes", "mib"]

RESERVE_BYTES = 2 << 20
"""Bytes kept free for deletions: the table's write-ahead log between two of
SQLite's checkpoints (at most 1 MiB, see ``store.sqlite``), what such a
checkpoint adds to the file, and a log file of deletions."""


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged process may still write on ``directory``'s filesystem."""
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def check_room(directory: Path, needed: int, what: str, reusable: int = 0) -> None:
    """Raise StoreFull unless ``needed`` bytes fit with the reserve left over;
    ``reusable`` bytes (free pages inside the store's own file) count as free."""
    free = free_bytes(directory) + reusable
    if free - needed < RESERVE_BYTES:
        raise StoreFull(
            f"no room for {what} in {directory}: {mib(free)} free, {mib(needed)} needed"
            f" and {mib(RESERVE_BYTES)} kept for deletions"
        )


def disk_full(error: BaseException) -> bool:
    """Whether ``error`` (from the OS or SQLite) says the disk is full."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def failure(what: str, error: BaseException) -> StoreError:
    """``error`` as a StoreError naming ``what``: a StoreFull if the disk is full."""
    return (StoreFull if disk_full(error) else StoreError)(f"{what}: {error}")


def mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"
