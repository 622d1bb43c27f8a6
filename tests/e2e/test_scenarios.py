"""The protocol scenario table run over sockets against a `geartrain server` process
and against Debian's gearmand (the `server` fixture)."""

from __future__ import annotations

import time

import pytest

from geartrain.protocol import Packet
from protocol_scenarios import SCENARIOS
from scenario_player import Scenario, play
from serverproc import ServerProc
from wire import Wire, admin_command


class Sockets:
    """One connection per peer.  Before a peer acts, the requests other peers sent are
    made sure to be handled (an ECHO round trip each), so the server sees the steps in
    the table's order whatever its threads."""

    def __init__(self, server: ServerProc) -> None:
        self.server = server
        self.kind = server.kind
        self.conns: dict[str, Wire] = {}
        self.unsynced: set[str] = set()

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()

    def conn(self, peer: str) -> Wire:
        for other in self.unsynced - {peer}:
            self.conns[other].sync()
        self.unsynced &= {peer}
        if peer not in self.conns:
            self.conns[peer] = Wire(self.server.port)
        return self.conns[peer]

    def send(self, peer: str, packet: Packet) -> None:
        self.conn(peer).send(packet.type, *packet.args, magic=packet.magic)
        self.unsynced.add(peer)

    def receive(self, peer: str) -> Packet | None:
        return self.conn(peer).next()

    def unexpected(self, peer: str) -> Packet | None:
        conn = self.conn(peer)
        conn.sync()
        self.unsynced.discard(peer)
        return conn.held.popleft() if conn.held else None

    def leave(self, peer: str) -> None:
        self.conn(peer).close()
        del self.conns[peer]
        self.unsynced.discard(peer)
        self.wait_for_connections(len(self.conns))

    def wait_for_connections(self, count: int) -> None:
        """Until the server lists ``count`` connections besides the one asking (gearmand
        handles a disconnect on another thread)."""
        deadline = time.monotonic() + 5
        while len(admin_command(self.server.port, "workers").splitlines()) - 2 != count:
            assert time.monotonic() < deadline, "the server kept a closed connection"
            time.sleep(0.01)

    def admin(self, peer: str, line: bytes) -> bytes | None:
        conn = self.conn(peer)
        reply = conn.admin(line)
        if reply or not conn.closed_by_server():
            return reply
        conn.close()
        del self.conns[peer]
        return None

    def peers(self) -> list[str]:
        return list(self.conns)


@pytest.mark.parametrize(
    ("scenario", "server_flags"),
    [(s, s.flags) for s in SCENARIOS],
    ids=[s.name.replace(" ", "_") for s in SCENARIOS],
)
def test_scenario(server: ServerProc, scenario: Scenario, request: pytest.FixtureRequest) -> None:
    if server.kind == "gearmand" and scenario.differs:
        request.applymarker(pytest.mark.gearmand_differs)
    world = Sockets(server)
    try:
        play(scenario, world)
    finally:
        world.close()
