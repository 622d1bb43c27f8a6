"""The faults: each one hits a topology, records itself in the ledger (when it began
and ended, which servers it hit) and returns once it is over.

- ``kill``: SIGKILL of a server (a random member of a cluster), restarted on the
  same port (a new identity in the cluster) after up to a second.
- ``stop``: SIGSTOP of the first member for :data:`STOP_SECONDS`, well past its
  lease, while its (slow) workers hold claimed jobs and a peer floods it with
  ECHO_REQ packets; then SIGCONT.
- ``cut``: the store link of the single server, or of the first member,
  black-holed at the proxy (nothing goes through, nothing is refused) and healed
  (for a member, past its lease).
- ``store-restart``: the private store killed (SIGKILL) and started again on its
  data.
- ``disk-full``: the workers pause (a backlog builds up in the queue's log) and
  the SQLite state directory's tmpfs is filled; once the server refuses
  submissions the workers drain the queue, then the space is freed.
- ``user``: the server, started as root with ``--user``, killed and started as
  that user itself (and the next time the other way round).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from cluster.test_crash import own_id
from geartrain.cluster.lease import TRUST
from geartrain.protocol import REQ, PacketType, pack
from serverproc import ServerProc

from .ledger import QUEUE_ERROR, Fault, Ledger
from .load import HOST, Load
from .topology import LEASE, Topology

STOP_SECONDS = 8.0
FULL_SECONDS = 30.0
"""How long a full disk waits at most for the server to refuse, then for the
queue to drain."""


def applies(fault: str, topology: str) -> bool:
    if fault == "stop":
        return topology.startswith("cluster-")
    if fault in ("cut", "store-restart"):
        return not topology.endswith("sqlite")
    if fault in ("disk-full", "user"):
        return topology == "single-sqlite"
    return fault == "kill"


def _settle(topo: Topology, load: Load) -> float:
    """How long after a store outage began a member may still start the jobs it
    holds: until its lease's own deadline (docs/cluster.md)."""
    return LEASE * TRUST + load.ledger.grace if topo.cluster else load.ledger.grace


async def _restart(server: ServerProc, fault: Fault) -> None:
    fault.ended = time.time()
    try:
        await asyncio.to_thread(server.start, 60)
    except RuntimeError as error:  # it did not come back: the report says why
        fault.notes["start_failed"] = str(error).strip().splitlines()[-1][:300]


async def kill(topo: Topology, load: Load, rng: random.Random) -> Fault:
    server = rng.choice(topo.servers)
    fault = load.ledger.fault("kill", (server.port,))
    await asyncio.to_thread(server.kill)
    await asyncio.sleep(rng.uniform(0.1, 1.0))
    await _restart(server, fault)
    return fault


async def user(topo: Topology, load: Load, rng: random.Random) -> Fault:
    server = topo.servers[0]
    fault = load.ledger.fault("user", (server.port,))
    await asyncio.to_thread(server.kill)
    assert topo.user is not None
    as_user = server.argv[0] != "setpriv"  # the other way this time
    server.argv = topo.argv(0, server.port, as_user)
    name = topo.user.pw_name
    fault.notes["restarted_as"] = name if as_user else f"root --user {name}"
    await _restart(server, fault)
    return fault


async def stop(topo: Topology, load: Load, rng: random.Random) -> Fault:
    member = topo.servers[0]
    ident = await asyncio.to_thread(own_id, member)
    async with _flooding(member.port):
        await asyncio.sleep(1.0)
        fault = load.ledger.fault("stop", (member.port,))
        member.signal(signal.SIGSTOP)
        try:
            assert topo.store is not None
            fault.notes["claimed_at_stop"] = len(await topo.store.held_by(ident))
            await asyncio.sleep(STOP_SECONDS)
        finally:
            fault.ended = time.time()
            member.signal(signal.SIGCONT)
        await asyncio.sleep(0.5)
    return fault


@contextlib.asynccontextmanager
async def _flooding(port: int) -> AsyncIterator[None]:
    """A peer floods the server with ECHO_REQ packets for the block, so that it is
    busy when it stops (a stall hits a loop at work, not one asleep in the poll)
    and has packets waiting when it resumes."""
    reader, writer = await asyncio.open_connection(HOST, port)
    block = pack(REQ, PacketType.ECHO_REQ, (b"ping",)) * 1000

    async def send() -> None:
        while True:
            writer.write(block)
            await writer.drain()

    async def discard() -> None:
        while await reader.read(1 << 16):
            pass

    tasks = [asyncio.create_task(send()), asyncio.create_task(discard())]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.transport.abort()


async def cut(topo: Topology, load: Load, rng: random.Random) -> Fault:
    assert topo.proxy is not None
    server = topo.servers[0]
    fault = load.ledger.fault("cut", (server.port,), holds_acks=True, settle=_settle(topo, load))
    topo.proxy.blackhole()
    await asyncio.sleep(rng.uniform(LEASE + 1, LEASE + 3) if topo.cluster else rng.uniform(1, 4))
    fault.ended = time.time()
    topo.proxy.heal()
    return fault


async def store_restart(topo: Topology, load: Load, rng: random.Random) -> Fault:
    store = topo.store_server
    assert store is not None
    settle = _settle(topo, load)
    fault = load.ledger.fault("store-restart", topo.ports, holds_acks=True, settle=settle)
    await asyncio.to_thread(store.kill)
    await asyncio.sleep(rng.uniform(0.5, 3.0))
    fault.ended = time.time()
    await asyncio.to_thread(store.start)
    return fault


async def disk_full(topo: Topology, load: Load, rng: random.Random) -> Fault:
    server = topo.servers[0]
    fault = load.ledger.fault("disk-full", (server.port,), holds_acks=True, keeps_accepting=True)
    load.working.clear()  # a backlog builds up in the queue's log
    filler = topo.state / "filler"
    fault.notes["filled_mib"] = await asyncio.to_thread(_fill, filler)
    deadline = time.monotonic() + FULL_SECONDS
    while time.monotonic() < deadline and not _refused_since(load.ledger, server.port, fault.began):
        await asyncio.sleep(0.2)
    fault.notes["refused_while_full"] = _refused_since(load.ledger, server.port, fault.began)
    load.working.set()
    deadline = time.monotonic() + FULL_SECONDS
    while time.monotonic() < deadline and await load.held() != 0:
        await asyncio.sleep(0.2)
    fault.ended = time.time()
    filler.unlink()
    return fault


def _fill(path: Path) -> int:
    """Write zeros to ``path`` until the filesystem is full; MiB written."""
    chunk = bytes(1 << 20)
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            written += os.write(fd, chunk)
    except OSError:  # ENOSPC: full
        return written >> 20
    finally:
        os.close(fd)


def _refused_since(ledger: Ledger, port: int, since: float) -> int:
    return sum(
        1
        for s in ledger.submissions
        if s.port == port and s.outcome == QUEUE_ERROR and s.start >= since
    )


INJECT: dict[str, Callable[[Topology, Load, random.Random], Awaitable[Fault]]] = {
    "kill": kill,
    "stop": stop,
    "cut": cut,
    "store-restart": store_restart,
    "disk-full": disk_full,
    "user": user,
}
FAULTS = tuple(INJECT)
