"""Every call to the shared store ends within a deadline shorter than the lease.

A store link that is black-holed (packets dropped, no reset) leaves a call
waiting for the driver's own timeout, and a driver's clean-up on cancellation
can wait on the same dead link (asyncpg's pool resets a connection it gets
back).  A member must notice before its lease runs out, so each call runs as a
task of its own that is abandoned at the deadline: the caller gets
``TimeoutError`` at once, and the abandoned call is cancelled in the
background.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from .backend import ClusterBackend

__all__ = ["with_deadline"]

T = TypeVar("T")

UNBOUNDED = frozenset({"open", "close"})
"""Calls left to the driver's own timeouts: joining (which may create the tables)
and leaving."""


async def within(seconds: float, call: Awaitable[T], abandoned: set[asyncio.Task[Any]]) -> T:
    """``call``'s result, or ``TimeoutError`` after ``seconds`` (the call is then
    cancelled without waiting for it, and kept in ``abandoned`` until it ends)."""
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        abandoned.add(task)
        task.add_done_callback(_forget(abandoned))
        raise TimeoutError(f"the store did not answer within {seconds:.1f} s")
    return task.result()


def _forget(abandoned: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its failure was reported as the timeout

    return done


class _Deadlined:
    def __init__(self, backend: ClusterBackend, seconds: float) -> None:
        self._backend = backend
        self._seconds = seconds
        self._abandoned: set[asyncio.Task[Any]] = set()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if name in UNBOUNDED or not inspect.iscoroutinefunction(attr):
            return attr
        seconds, abandoned = self._seconds, self._abandoned

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await within(seconds, attr(*args, **kwargs), abandoned)

        return call


def with_deadline(backend: ClusterBackend, seconds: float) -> ClusterBackend:
    """``backend`` with every call but :data:`UNBOUNDED` ending within ``seconds``."""
    return cast("ClusterBackend", _Deadlined(backend, seconds))
