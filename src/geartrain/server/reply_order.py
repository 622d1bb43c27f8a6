"""Answers leave in the order of the requests, even when one must wait.

A client may send several requests before reading the answers, and match them
by order: libgearman pairs each JOB_CREATED with its oldest submission still
unanswered (the packet carries no other key).  Most answers go out at once,
but some wait for a store: a background job is acknowledged only once the
store has it (the power level, a store outage, a cluster's shared store), and
a cluster answers a status query after asking the shared store.  While such
an answer is owed, everything else the server sends that peer queues behind
it, so a foreground job's JOB_CREATED cannot overtake an earlier background
one's.  The usual path (nothing owed) costs nothing: the peer's ``send`` is
the connection's own until an answer is owed, and again once all are paid.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .model import HeldReplies, Owed

if TYPE_CHECKING:
    from .model import Peer

__all__ = ["answer_later", "owe", "pay"]

log = logging.getLogger("geartrain.server")


def owe(peer: Peer, key: object) -> None:
    """The answer to ``peer``'s latest request comes later (``pay`` with the same
    ``key``); until then what the server sends ``peer`` waits behind it."""
    held = peer.held
    if held is None:
        held = peer.held = HeldReplies(peer.send)
        peer.send = held.queue.append
    held.queue.append(Owed(key))


def pay(peer: Peer, key: object, data: bytes) -> None:
    """Send the answer owed for ``key``, then whatever waited behind it."""
    held = peer.held
    if held is None:  # nothing owed (any more): an answer like any other
        peer.send(data)
        return
    queue = held.queue
    for item in queue:
        if isinstance(item, Owed) and item.key is key and item.data is None:
            item.data = data
            break
    else:
        queue.append(data)
    send = held.send
    while queue:
        head = queue[0]
        if isinstance(head, Owed):
            if head.data is None:
                return  # an older answer is still owed
            head = head.data
        queue.popleft()
        send(head)
    peer.send = send
    peer.held = None


def answer_later(
    peer: Peer,
    answer: Awaitable[bytes],
    failed: Callable[[Exception], bytes],
    tasks: set[asyncio.Task[Any]],
) -> None:
    """Answer ``peer`` once ``answer`` (a round trip to a store) is ready, in the
    order of its requests; if it raises, ``failed`` gives the answer.  The task
    that waits is kept in ``tasks`` until it ends."""
    key = object()
    owe(peer, key)

    async def answer_then_pay() -> None:
        try:
            reply = await answer
        except Exception as error:  # a store's failure, whatever its driver raises
            log.warning("An answer from the store failed: %s", error)
            reply = failed(error)
        if not peer.closed:
            pay(peer, key, reply)

    task = asyncio.get_running_loop().create_task(answer_then_pay())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
