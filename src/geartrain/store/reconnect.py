"""A lost connection, tried once more: what a database restart costs the stores;
and how a driver's error reaches the server."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from . import StoreError

__all__ = ["driver_error", "once_more_if_lost"]

log = logging.getLogger(__package__)
_T = TypeVar("_T")


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


def driver_error(where: object, exc: BaseException) -> StoreError:
    """A database driver's error as the StoreError the server sees, naming the store."""
    return StoreError(f"{where}: {type(exc).__name__}: {exc}")
