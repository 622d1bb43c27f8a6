"""Time as a cluster member's parts get it: the core's ``call_later`` (the loop's
in a server, a manual clock's in a test), never the loop's timers directly, so
the claimer's poll, the lease's renewals and the writes' retries can be driven
by a test's clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["CallLater", "sleep"]

CallLater = Callable[[float, Callable[[], None]], Any]
"""Run a callback after so many seconds; what it returns has ``cancel()``."""


async def sleep(call_later: CallLater, seconds: float) -> None:
    """Wait ``seconds`` by ``call_later``'s clock."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    timer = call_later(seconds, wake)
    try:
        await done
    finally:
        timer.cancel()
