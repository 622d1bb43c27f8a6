"""The I/O layer over real sockets and a real event loop (socketpairs, no server process)."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Iterator

import pytest

from geartrain.protocol import REQ, RES, PacketType, pack
from geartrain.server.admin import AdminCommands
from geartrain.server.core import JobServer
from geartrain.server.flags import ServerConfig
from geartrain.server.limits import EVENTS_PER_TURN
from geartrain.server.network import Connection, Network
from geartrain.server.requests import Requests

T = PacketType


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def connect(network: Network) -> tuple[Connection, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    loop = asyncio.get_running_loop()
    _, conn = await loop.connect_accepted_socket(network.protocol_factory, theirs)
    return conn, ours


async def receive(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 10)
        assert chunk, "closed"
        data += chunk
    return data


def make_network(**config: int) -> Network:
    core = JobServer(ServerConfig(**config))  # type: ignore[arg-type]
    return Network(Requests(core), AdminCommands(core, lambda: "NOTICE"), core.config)


async def test_a_closed_connection_is_freed_without_the_cyclic_collector(no_gc: None) -> None:
    network = make_network()
    conn, ours = await connect(network)
    loop = asyncio.get_running_loop()
    data = pack(REQ, T.CAN_DO, (b"f",)) + pack(REQ, T.ECHO_REQ, (b"x" * 100_000,))[:50_000]
    await loop.sock_sendall(ours, data)
    while conn.decoder.buffered < 40_000:
        await asyncio.sleep(0.01)
    assert conn.decoder.allocated >= 40_000
    ours.close()
    while network.connections:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0)
    assert network.input_bytes == 0
    assert conn.decoder.allocated == 0  # the buffer went at close
    del conn
    # Counted rather than watched with a weakref: the compiled build's classes have none.
    assert not any(type(o) is Connection for o in gc.get_objects())


async def test_a_flood_is_handled_a_turn_at_a_time() -> None:
    network = make_network()
    conn, ours = await connect(network)
    count = EVENTS_PER_TURN * 3 + 5
    conn.decoder.feed(pack(REQ, T.ECHO_REQ, (b"e",)) * count)
    conn._handle_events()
    assert conn.decoder.buffered == (count - EVENTS_PER_TURN) * 13  # the rest waits
    assert conn.transport is not None and not conn.transport.is_reading()
    received = await receive(ours, count * 13)
    assert received == pack(RES, T.ECHO_RES, (b"e",)) * count
    assert conn.transport.is_reading()  # reading resumed once the backlog was done
    ours.close()


async def test_idle_buffers_are_released() -> None:
    network = make_network()
    conn, ours = await connect(network)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(ours, pack(REQ, T.ECHO_REQ, (b"hello",)))
    assert (await receive(ours, 17)).endswith(b"hello")
    assert conn.decoder.allocated > 0
    assert network.release_idle_buffers() == 1
    assert conn.decoder.allocated == 0
    await loop.sock_sendall(ours, pack(REQ, T.ECHO_REQ, (b"again",)))
    assert (await receive(ours, 17)).endswith(b"again")  # a new buffer as soon as bytes come
    ours.close()


@pytest.mark.parametrize("busy_poll_us", [100_000, 0])
async def test_answering_keeps_the_loop_polling_unless_turned_off(busy_poll_us: int) -> None:
    network = make_network(busy_poll_us=busy_poll_us)
    conn, ours = await connect(network)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(ours, pack(REQ, T.ECHO_REQ, (b"hello",)))
    await receive(ours, 17)
    assert network.busy_poll.polling is bool(busy_poll_us)
    ours.close()
