"""Helpers the backends share: identifier checks and error wording."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from . import StoredJob
from .records import FailedJob, encode_outcomes

__all__ = [
    "LIBPQ_TABLE",
    "MYSQL_TABLE",
    "REDIS_PREFIX",
    "SQLITE_TABLE",
    "check_identifier",
    "failed_row",
    "once_more_if_lost",
    "without_overlap",
]

log = logging.getLogger(__package__)
_T = TypeVar("_T")

# gearmand's defaults, here so that the command line can show them without
# importing the database drivers (they are optional extras).
SQLITE_TABLE = "gearman_queue"
LIBPQ_TABLE = "queue"
MYSQL_TABLE = "gearman_queue"
REDIS_PREFIX = "_gear_"

# Table names go into SQL text (they cannot be parameters), so only plain
# identifiers are accepted.  63 bytes is PostgreSQL's limit and the smallest.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_identifier(name: str, what: str = "table name") -> str:
    """Return ``name`` if it is a plain SQL identifier.

    Raises:
        ValueError: ``name`` has other characters or is too long.
    """
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"invalid {what} {name!r}: use letters, digits and _ (at most 63, not starting"
            " with a digit)"
        )
    return name


def without_overlap(
    added: Sequence[StoredJob], done: Sequence[int]
) -> tuple[Sequence[StoredJob], Sequence[int]]:
    """Drop the jobs that are both added and done in one write.

    A job that finished before its batch was committed never needs a row.
    Backends that write in one statement (where a DELETE cannot see the
    INSERT beside it) rely on this; for the others it just saves work.
    """
    if not added or not done:
        return added, done
    gone = set(done)
    kept = [job for job in added if job.id not in gone]
    if len(kept) == len(added):
        return added, done
    dropped = {job.id for job in added} - {job.id for job in kept}
    return kept, [i for i in done if i not in dropped]


async def once_more_if_lost(
    call: Callable[[], Awaitable[_T]],
    lost: Callable[[Exception], bool],
    where: object,
    reset: Callable[[], Awaitable[None]] | None = None,
) -> _T:
    """Run ``call``; if it fails with an error that ``lost`` says means a dead
    connection, run it once more (after ``reset``, which should make the pool
    drop the connections it holds).

    A database restart leaves the pool with connections that fail on first
    use; the retry takes a fresh one, so clients see no error once the server
    is back.  It is safe for writes: if the lost attempt did commit, the retry
    fails on the ids it finds stored, which reports an outcome that is unknown
    anyway (see :meth:`geartrain.store.Store.write`).
    """
    try:
        return await call()
    except Exception as exc:
        if not lost(exc):
            raise
        log.info("%s: connection lost (%s); trying once more", where, exc)
    if reset is not None:
        await reset()
    return await call()


def failed_row(record: FailedJob) -> tuple[bytes, bytes, bytes, bytes, int, int, float, str, str]:
    """A failed job as the SQL backends' failed table stores it, in column order."""
    return (
        record.handle,
        record.function,
        record.unique,
        record.data,
        record.priority,
        record.attempts,
        record.failed_at,
        record.reason,
        encode_outcomes(record.outcomes),
    )
