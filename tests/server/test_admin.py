"""Admin commands over the core: gearmand's exact bytes (libgearman-server/text.cc)."""

from __future__ import annotations

import os

import pytest

from geartrain.__about__ import __version__
from geartrain.protocol import REQ, Decoder, Packet, PacketType
from geartrain.server.admin import AdminCommands
from geartrain.server.core import JobServer
from geartrain.server.flags import ServerConfig
from geartrain.server.model import Peer
from geartrain.server.requests import Requests

from .harness import resolved

T = PacketType


class Setup:
    def __init__(self) -> None:
        self.server = JobServer(ServerConfig(handle_prefix="H:t"))
        self.requests = Requests(self.server)
        self.admin = AdminCommands(self.server, lambda: "NOTICE")
        self.fd = 10

    def peer(self, loopback: bool = True) -> Peer:
        self.fd += 1
        peer = Peer(Decoder().feed, lambda: None, "127.0.0.1", self.fd, loopback)
        self.server.connect(peer)
        return peer

    def send(self, peer: Peer, ptype: PacketType, *args: bytes) -> None:
        self.requests.packet(peer, Packet(REQ, ptype, args))

    def ask(self, line: bytes, peer: Peer | None = None) -> bytes | None:
        return resolved(self.admin.line(peer or self.peer(), line))


@pytest.fixture
def s() -> Setup:
    return Setup()


def test_status_and_prioritystatus(s: Setup) -> None:
    worker, client = s.peer(), s.peer()
    s.send(worker, T.CAN_DO, b"f")
    s.send(client, T.SUBMIT_JOB_HIGH_BG, b"f", b"", b"1")
    s.send(client, T.SUBMIT_JOB_LOW_BG, b"f", b"", b"2")
    s.send(client, T.SUBMIT_JOB_BG, b"g", b"", b"3")
    s.send(worker, T.GRAB_JOB)
    assert s.ask(b"status") == b"f\t2\t1\t1\ng\t1\t0\t0\n.\n"
    assert s.ask(b"prioritystatus") == b"f\t0\t0\t1\t1\ng\t0\t1\t0\t0\n.\n"
    assert s.ask(b"STATUS") == s.ask(b"status")


def test_workers_lists_every_connection(s: Setup) -> None:
    worker = s.peer()
    s.send(worker, T.SET_CLIENT_ID, b"wid-1")
    s.send(worker, T.CAN_DO, b"rev")
    s.send(worker, T.CAN_DO, b"other")
    asker = s.peer()
    assert s.ask(b"workers", asker) == b"11 127.0.0.1 wid-1 : other rev\n12 127.0.0.1 - :\n.\n"


def test_show_jobs_and_unique_jobs(s: Setup) -> None:
    client = s.peer()
    s.send(client, T.SUBMIT_JOB_BG, b"f", b"u1", b"x")
    s.send(client, T.SUBMIT_JOB, b"f", b"", b"y")
    assert s.ask(b"show jobs") == b"H:t:1\t0\t0\t1\nH:t:2\t0\t0\t0\n.\n"
    assert s.ask(b"show unique jobs") == b"u1\n\n.\n"
    assert s.ask(b"show") == b"ERR UNKNOWN_COMMAND Unknown+server+commandshow\r\n"
    assert s.ask(b"show stuff") == b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"


def test_maxqueue(s: Setup) -> None:
    assert s.ask(b"maxqueue nosuch 5") == b"OK\r\n"
    s.server.function(b"f")
    assert s.ask(b"maxqueue f 5") == b"OK\r\n"
    assert s.server.functions[b"f"].max_queue == (5, 5, 5)
    assert s.ask(b"maxqueue f 1 2 -3") == b"OK\r\n"
    assert s.server.functions[b"f"].max_queue == (1, 2, 0)
    assert s.ask(b"maxqueue f") == b"OK\r\n"
    assert s.server.functions[b"f"].max_queue is None
    assert s.ask(b"maxqueue").startswith(b"ERR INVALID_ARGUMENTS")  # type: ignore[union-attr]


def test_values_of_this_server(s: Setup) -> None:
    assert s.ask(b"getpid") == b"OK %d\n" % os.getpid()
    assert s.ask(b"version") == b"OK " + __version__.encode() + b"\n"
    assert s.ask(b"verbose") == b"OK NOTICE\n"


def test_shutdown_only_from_loopback(s: Setup) -> None:
    calls: list[bool] = []
    s.server.on_shutdown = calls.append
    assert s.ask(b"shutdown", s.peer(loopback=False)).startswith(b"ERR")  # type: ignore[union-attr]
    assert calls == []
    assert s.ask(b"shutdown graceful") == b"OK\r\n"
    assert s.ask(b"shutdown") == b"OK\r\n"
    assert calls == [True, False]
