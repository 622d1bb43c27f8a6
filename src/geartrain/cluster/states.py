"""A shared job's state as the cluster's store keeps it (PostgreSQL's ``state``
column, the ``state`` field of a Redis job hash).

Not the server's :class:`~geartrain.server.model.JobState`: a shared job is
either waiting in the store for any member, or claimed by one member (held
for its workers, or running).  The stored values are kept from the first
release of cluster mode.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["State"]


class State(IntEnum):
    WAITING = 0
    """Queued, or waiting for its due time (an epoch job, a retry's backoff)."""
    CLAIMED = 2
    """Claimed by a member: held for its workers, or running."""
