"""Cluster mode: several servers share their background jobs through one store.

Every background and epoch job goes into the shared store; an idle worker on
any server of the cluster gets it; foreground jobs stay on the server their
client is connected to.  The distributed part rests on the store (PostgreSQL's
row locks, ``SKIP LOCKED`` and LISTEN/NOTIFY; Redis's Lua scripts, sorted sets
and pub/sub), never on a protocol of our own: see docs/cluster.md for what
holds across servers and what is approximate.

- :mod:`.node`: a server's membership (joining, the lease's heartbeat);
- :mod:`.keeper`: the core's keeper, with :mod:`.claimer` and :mod:`.claims`
  (jobs claimed for this server's workers) and :mod:`.writes` (batched writes);
- :mod:`.rescue`: what becomes of a dead member's jobs;
- :mod:`.lease`, :mod:`.deadline`, :mod:`.timing`: the lease's clock, store calls
  under a deadline, timers;
- :mod:`.answers`, :mod:`.failures`, :mod:`.results`: the admin answers, the
  failed-job set and the kept results shared by the members;
- :mod:`.backend`, :mod:`.states`: what a member asks of a shared store, and the
  stored job states; :mod:`.postgres`, :mod:`.redis` (with
  :mod:`.redis_scripts`): the two stores.

This module holds the records that pass between a member and its store.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

__all__ = [
    "Claimed",
    "Failure",
    "Orphan",
    "Retry",
    "Submission",
    "cluster_handle",
    "coalesce_key",
    "parse_handle",
]


class Submission(NamedTuple):
    """A background job on its way into the shared store."""

    function: bytes
    unique: bytes
    data: bytes
    priority: int
    when: int
    reducer: bytes
    retry: str = ""
    """Its submission's retry policy in the retries extension's words; empty: none."""
    keep: float = 0.0
    """Seconds its submitter asked its result to be kept (the keep_result option)."""


class Claimed(NamedTuple):
    """A job this server took from the shared store, under claim number ``claim``."""

    id: int
    prefix: bytes
    function: bytes
    unique: bytes
    data: bytes
    priority: int
    reducer: bytes
    claim: int
    """Raised by every claim of the job: the fence of every later write about it
    (a job claimed again since is not touched); stored as ``attempt``."""
    retries: int
    """Times it was queued again after losing its worker or its server (--job-retries)."""
    failures: int = 0
    """Failed attempts so far (the retry policy's count; server deaths included)."""
    outcomes: str = "[]"
    """How each failed attempt ended, as JSON (``store.records.encode_outcomes``)."""
    retry: str = ""
    """As :class:`Submission`'s."""
    keep: float = 0.0
    """As :class:`Submission`'s."""


class Orphan(NamedTuple):
    """A job claimed by a member whose lease expired: the member that sweeps
    decides what becomes of it (:mod:`.rescue`)."""

    id: int
    claim: int
    owner: int
    """The dead member's server id."""
    function: bytes
    retries: int
    failures: int
    outcomes: str
    retry: str = ""
    """Its submission's retry policy (as :class:`Submission`'s)."""


class Retry(NamedTuple):
    """An attempt at a claimed job failed; it runs again, on any server, ``delay``
    seconds from now (by the store's clock)."""

    id: int
    claim: int
    """The fence, as for :class:`Claimed`."""
    retries: int
    failures: int
    outcomes: str
    delay: float


class Failure(NamedTuple):
    """A claimed job failed for good: it moves to the cluster's failed-job set."""

    id: int
    claim: int
    """The fence, as for :class:`Claimed`."""
    failures: int
    outcomes: str
    reason: str


def cluster_handle(prefix: bytes, job_id: int) -> bytes:
    """A shared job's handle: its submitting server's prefix and ``c`` + its row id,
    the same on every server."""
    return b"%s:c%d" % (prefix, job_id)


def parse_handle(handle: bytes) -> tuple[bytes, int] | None:
    """(prefix, row id) of a shared job's handle; None for a server's own handles."""
    prefix, sep, tail = handle.rpartition(b":")
    if not sep or not tail.startswith(b"c") or not tail[1:].isdigit() or len(tail) > 20:
        return None
    return prefix, int(tail[1:])


def coalesce_key(unique: bytes, data: bytes) -> bytes | None:
    """The key background jobs coalesce on cluster-wide: the unique key, or the
    data's digest for "-"."""
    if unique == b"-":
        return b"-" + hashlib.sha256(data).digest() if data else None
    return unique or None
