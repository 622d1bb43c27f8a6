"""The protocol scenario table run against the server core in memory, through
`Requests(core).packet` and the admin commands, with no sockets."""

from __future__ import annotations

from collections import deque

import pytest

from fuzz.targets import check_core
from geartrain.cli.server_flags import build_parser, config_from_args
from geartrain.protocol import RES, Packet
from geartrain.server.admin import AdminCommands
from geartrain.server.core import JobServer
from protocol_scenarios import SCENARIOS
from scenario_player import Scenario, play

from .harness import Clock, Conn, resolved


class Core:
    """A server core made with a scenario's flags; peers are harness connections."""

    kind = "core"

    def __init__(self, flags: tuple[str, ...], clock: Clock) -> None:
        config = config_from_args(build_parser().parse_args(list(flags)))
        self.server = JobServer(config, call_later=clock.call_later, clock=lambda: clock.now)
        self.commands = AdminCommands(self.server, lambda: config.verbose)
        self.conns: dict[str, Conn] = {}
        self.inbox: dict[str, deque[Packet]] = {}

    def conn(self, peer: str) -> Conn:
        if peer not in self.conns:
            self.conns[peer] = Conn(self.server, peer)
            self.inbox[peer] = deque()
        return self.conns[peer]

    def send(self, peer: str, packet: Packet) -> None:
        conn = self.conn(peer)
        conn.requests.packet(conn.peer, packet)

    def receive(self, peer: str) -> Packet | None:
        inbox = self.inbox.setdefault(peer, deque())
        inbox.extend(Packet(RES, ptype, args) for ptype, args in self.conn(peer).received())
        return inbox.popleft() if inbox else None

    unexpected = receive  # every request is handled when it is sent

    def leave(self, peer: str) -> None:
        self.conns.pop(peer).leave()

    def admin(self, peer: str, line: bytes) -> bytes | None:
        reply = resolved(self.commands.line(self.conn(peer).peer, line))
        if reply is None:
            self.leave(peer)
        return reply

    def peers(self) -> list[str]:
        return list(self.conns)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name.replace(" ", "_"))
def test_scenario(scenario: Scenario, clock: Clock) -> None:
    core = Core(scenario.flags, clock)
    play(scenario, core)
    check_core(core.server)  # and every job, count and index is where it should be
