"""Durability levels: what an acknowledged background job survives.

One flag, ``--durability``, picks the level; ``-q`` and its options still pick
the backend.  Each backend maps the level onto its own sync setting (SQLite's
``synchronous``, PostgreSQL's ``synchronous_commit``) or, where the setting
belongs to the database server, says at start what that setting gives.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DEFAULT", "SYNC_INTERVAL", "Durability"]


class Durability(StrEnum):
    CRASH = "crash"
    """JOB_CREATED once the job is in the store's log in the operating system:
    a crash, ``kill -9`` or restart of the server loses nothing; a power cut or
    kernel crash may lose the last :data:`SYNC_INTERVAL` of jobs."""
    POWER = "power"
    """JOB_CREATED after an fsynced commit: survives power loss."""
    MEMORY = "memory"
    """No store (``-q builtin``): queued jobs are lost when the server stops."""

    @property
    def promise(self) -> str:
        """What the level keeps, for the start-up log."""
        return _PROMISES[self]


_PROMISES = {
    Durability.CRASH: "acknowledged jobs survive a crash of the server; fsync in the background",
    Durability.POWER: "acknowledged jobs survive power loss; fsync before JOB_CREATED",
    Durability.MEMORY: "queued jobs are lost when the server stops",
}

DEFAULT = Durability.CRASH
"""The level of a durable queue when ``--durability`` is not given."""

SYNC_INTERVAL = 1.0
"""Seconds between background syncs at the crash level: the most a power cut loses."""
