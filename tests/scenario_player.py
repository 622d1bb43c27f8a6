"""The language of the protocol scenario table (protocol_scenarios.py) and its player.

A scenario names its peers by short strings and lists what each sends (packets, admin
lines, disconnecting) and what each must receive next, exactly.  `play` runs it in a
`World`: the server core in memory (tests/server/test_scenarios.py) or a server process
over sockets, geartrain's and Debian's gearmand alike (tests/e2e/test_scenarios.py).

Handles differ from server to server, so a scenario names them: a `Var` in an expected
packet takes the value received there; afterwards it stands for that value in what is
sent and expected.  Two Vars never stand for the same handle, so naming a second one is
asserting the server made a new job.  When a scenario ends, no peer has anything left
to receive.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from geartrain.protocol import REQ, Packet, PacketType

T = PacketType


@dataclass(frozen=True)
class Var:
    """A value (a job handle) learnt from the server during the scenario."""

    name: str


Part = bytes | Var
Arg = Part | tuple[Part, ...]
"""bytes, a Var, or several of them concatenated."""


@dataclass(frozen=True)
class Send:
    peer: str
    type: PacketType
    args: tuple[Arg, ...]
    magic: bytes = REQ


@dataclass(frozen=True)
class Recv:
    """The next packet ``peer`` receives is exactly this."""

    peer: str
    type: PacketType
    args: tuple[Arg, ...]


@dataclass(frozen=True)
class Nothing:
    """``peer`` has received nothing more by the time its requests are handled."""

    peer: str


@dataclass(frozen=True)
class Leave:
    """``peer`` disconnects."""

    peer: str


CLOSED = None
"""An admin reply: the server closes the connection instead."""


@dataclass(frozen=True)
class Admin:
    """``peer`` sends an admin line; the reply is exactly ``reply`` (a pattern: matches
    the whole reply; CLOSED: the connection is closed)."""

    peer: str
    line: Arg
    reply: Arg | re.Pattern[bytes] | None


@dataclass(frozen=True)
class Differs:
    """Where gearmand 1.1 departs from the protocol text: geartrain (and the core) do
    ``ours``, gearmand does ``gearmand`` (docs/compatibility.md says why)."""

    ours: tuple[Step, ...]
    gearmand: tuple[Step, ...]


Step = Send | Recv | Nothing | Leave | Admin | Differs


def send(peer: str, ptype: PacketType, *args: Arg, magic: bytes = REQ) -> Send:
    return Send(peer, ptype, args, magic)


def recv(peer: str, ptype: PacketType, *args: Arg) -> Recv:
    return Recv(peer, ptype, args)


def differs(ours: Sequence[Step], gearmand: Sequence[Step]) -> Differs:
    return Differs(tuple(ours), tuple(gearmand))


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    flags: tuple[str, ...] = ()
    """`geartrain server` / gearmand flags (the core gets the config they make)."""

    @property
    def differs(self) -> bool:
        return any(isinstance(step, Differs) for step in self.steps)


Steps = Step | Sequence["Steps"]
"""A step, or a list of them (made by a helper), nested as deep as need be."""


def scenario(name: str, *steps: Steps, flags: Sequence[str] = ()) -> Scenario:
    return Scenario(name, tuple(_flat(steps)), tuple(flags))


def _flat(steps: Sequence[Steps]) -> Iterator[Step]:
    for step in steps:
        if isinstance(step, Sequence):
            yield from _flat(step)
        else:
            yield step


class World(Protocol):
    """Where a scenario runs: one server and the peers' connections to it."""

    kind: str
    """Which server: "core", "geartrain" or "gearmand"."""

    def send(self, peer: str, packet: Packet) -> None: ...

    def receive(self, peer: str) -> Packet | None:
        """The next packet ``peer`` receives; None if none comes."""

    def unexpected(self, peer: str) -> Packet | None:
        """Once every request sent so far is handled: a packet ``peer`` has yet to
        take, or None."""

    def leave(self, peer: str) -> None: ...

    def admin(self, peer: str, line: bytes) -> bytes | None:
        """The reply to an admin line; None if the server closed the connection."""

    def peers(self) -> list[str]:
        """The peers still connected."""


@dataclass
class Player:
    world: World
    bound: dict[Var, bytes] = field(default_factory=dict)

    def value(self, arg: Arg) -> bytes:
        parts = arg if isinstance(arg, tuple) else (arg,)
        return b"".join(self.bound[p] if isinstance(p, Var) else p for p in parts)

    def match(self, expected: Arg, got: bytes) -> bool:
        if isinstance(expected, Var) and expected not in self.bound:
            assert got not in self.bound.values(), f"{expected.name} is another job's {got!r}"
            self.bound[expected] = got
        return self.value(expected) == got

    def step(self, step: Step) -> None:
        world = self.world
        if isinstance(step, Differs):
            for inner in step.gearmand if world.kind == "gearmand" else step.ours:
                self.step(inner)
        elif isinstance(step, Send):
            args = tuple(self.value(arg) for arg in step.args)
            world.send(step.peer, Packet(step.magic, step.type, args))
        elif isinstance(step, Recv):
            got = world.receive(step.peer)
            assert got is not None, f"{step.peer} received nothing, expected {step}"
            ok = got.type == step.type and len(got.args) == len(step.args)
            ok = ok and all(self.match(e, g) for e, g in zip(step.args, got.args, strict=True))
            assert ok, f"{step.peer} received {got}, expected {step}"
        elif isinstance(step, Nothing):
            assert (got := world.unexpected(step.peer)) is None, f"{step.peer} received {got}"
        elif isinstance(step, Leave):
            world.leave(step.peer)
        else:
            reply = world.admin(step.peer, self.value(step.line))
            if isinstance(step.reply, re.Pattern):
                assert reply is not None and step.reply.fullmatch(reply), reply
            else:
                expected = step.reply if step.reply is None else self.value(step.reply)
                assert reply == expected, f"{step.line!r}: {reply!r}, expected {expected!r}"


def play(scenario: Scenario, world: World) -> None:
    player = Player(world)
    for step in scenario.steps:
        player.step(step)
    for peer in world.peers():
        assert (got := world.unexpected(peer)) is None, f"{peer} received {got} at the end"
