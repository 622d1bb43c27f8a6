"""Driving the server core with no sockets: peers that decode what they are sent,
timers on a manual clock, keepers that record what they are asked to keep."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from geartrain.protocol import REQ, RES, Decoder, Packet, PacketType
from geartrain.server.core import JobServer
from geartrain.server.flags import ServerConfig
from geartrain.server.model import Job, Peer
from geartrain.server.ports import LocalKeeper
from geartrain.server.requests import Requests
from geartrain.server.settings import parse_settings

T = PacketType
R = TypeVar("R")


@dataclass
class Timer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Clock:
    now: float = 1_000_000.0
    timers: list[Timer] = field(default_factory=list)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in sorted(self.timers, key=lambda t: t.when):
            if timer.when <= self.now and not timer.cancelled:
                timer.cancelled = True
                timer.callback()


class Conn:
    """A peer whose sent bytes are decoded back into packets."""

    def __init__(self, server: JobServer, name: str, names: tuple[str, ...] = ()) -> None:
        self.server = server
        self.decoder = Decoder()
        self.closed = False
        self.peer = Peer(self.decoder.feed, self._close, host=name)
        self.peer.names = names  # its TLS certificate's names
        self.requests = Requests(server)
        server.connect(self.peer)

    def _close(self) -> None:
        self.closed = True

    def send(self, ptype: PacketType, *args: bytes) -> None:
        self.requests.packet(self.peer, Packet(REQ, ptype, args))

    def received(self) -> list[tuple[PacketType, tuple[bytes, ...]]]:
        out = []
        while (event := self.decoder.next_event()) is not None:
            assert isinstance(event, Packet) and event.magic == RES
            out.append((event.type, event.args))
        return out

    def one(self, ptype: PacketType) -> tuple[bytes, ...]:
        packets = self.received()
        assert [p[0] for p in packets] == [ptype], packets
        return packets[0][1]

    def submit(
        self, function: bytes, data: bytes, unique: bytes = b"", kind: T = T.SUBMIT_JOB
    ) -> bytes:
        self.send(kind, function, unique, data)
        return self.one(T.JOB_CREATED)[0]

    def grab(self) -> tuple[bytes, ...] | None:
        self.send(T.GRAB_JOB_UNIQ)
        [(ptype, args)] = self.received()
        if ptype == T.NO_JOB:
            return None
        assert ptype == T.JOB_ASSIGN_UNIQ
        return args

    def leave(self) -> None:
        self.server.disconnect(self.peer)


def make(clock: Clock, **config: object) -> JobServer:
    return JobServer(
        ServerConfig(handle_prefix="H:test", **config),  # type: ignore[arg-type]
        call_later=clock.call_later,
        clock=lambda: clock.now,
    )


def configured(clock: Clock, settings: dict[str, object], **config: object) -> JobServer:
    """A core with the settings file's tables ``settings`` applied."""
    server = make(clock, **config)
    server.apply_settings(parse_settings(settings))
    return server


RETRY_FLAKY = {
    "functions": {
        "flaky*": {
            "attempts": 3,
            "retry_on": ["fail", "exception", "worker_lost", "timeout"],
            "backoff_base": 10.0,
            "jitter": 0.0,
        }
    }
}
"""Settings: functions named flaky* get three attempts whatever the failure, 10 s apart at first."""


def run_job(worker: Conn, result: PacketType, *args: bytes) -> bytes:
    """The worker grabs a job and ends it with ``result``; its handle."""
    job = worker.grab()
    assert job is not None
    worker.send(result, job[0], *args)
    return job[0]


class ListKeeper(LocalKeeper):
    """A store that commits later (a transaction)."""

    def __init__(self) -> None:
        self.added: list[Job] = []
        self.logged: list[Job] = []
        self.done_ids: list[int] = []
        self.next_id = 1

    def _take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def keep(self, job: Job) -> bool:
        job.store_id = self._take_id()
        self.added.append(job)
        return False

    def forget(self, job: Job) -> None:
        if job.store_id:
            self.done_ids.append(job.store_id)

    def retry(self, job: Job) -> bool:
        if job.background:
            previous, job.store_id = job.store_id, self._take_id()
            self.added.append(job)
            self.done_ids.append(previous)
        return False

    def requeue(self, job: Job) -> bool:
        return False


class LogKeeper(ListKeeper):
    """A store that takes a new job at once (a log append)."""

    def keep(self, job: Job) -> bool:
        job.store_id = self._take_id()
        self.logged.append(job)
        return True


def resolved(answer: Awaitable[R] | R) -> R:
    """The value of an answer that needs no waiting (this server's failed set, an
    admin reply): a coroutine run to its end without an event loop."""
    if not hasattr(answer, "send"):
        return answer  # type: ignore[return-value]
    coroutine: Any = answer
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coroutine.close()
    raise AssertionError("the answer waited for something")
