"""The text admin protocol over the server core, byte for byte as gearmand answers.

Lines arrive already split from the binary stream (the codec strips ``\\r\\n``
or ``\\n``; gearmand loses the last character of a line ended by a bare
``\\n``, we do not).  Listings end in ``\\n`` and a ``.`` line; ``OK`` and
``ERR`` replies end in ``\\r\\n``, except ``OK <value>`` replies, which end in
``\\n``: all as gearmand 1.1 (``libgearman-server/text.cc``).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import NamedTuple, Protocol

from ..__about__ import __version__
from ..durations import parse_duration
from ..store.records import FailedJob
from .access import ADMIN_COMMAND_ACTIONS
from .acl_admin import AclCommands
from .audit import who
from .core import JobServer
from .model import JobState, Peer
from .replies import c_atoi
from .results import wait_for_end

__all__ = [
    "MAX_RESULT_WAIT",
    "MAX_TOKENS",
    "AdminCommands",
    "Answer",
    "Member",
    "SharedAdmin",
    "failed_listing",
    "result_line",
]

Answer = bytes | Awaitable[bytes]
"""An admin reply: now, or once a store has answered (sent in request order)."""

MAX_TOKENS = 5  # gearmand closes the connection on a line with more words

OK = b"OK\r\n"
ERR_UNKNOWN_JOB = b"ERR UNKNOWN_JOB\r\n"
ERR_INTERNAL = b"ERR UNKNOWN_ERROR\r\n"
ERR_SHOW = b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
ERR_BUSY = b"ERR there are still connected workers or executing clients\r\n"
ERR_NO_FUNCTION = b"ERR function not found\r\n"
ERR_SHUTDOWN_REMOTE = b"ERR PERMISSION_DENIED shutdown+is+accepted+only+from+loopback\r\n"
ERR_DENIED = b"ERR PERMISSION_DENIED not+allowed+by+the+access+rules\r\n"
ERR_CLAIMED = b"ERR JOB_CLAIMED claimed+by+another+server:+cancel+it+there\r\n"

_SPACES = re.compile(rb" +")
_CONTROL = re.compile(rb"[\t\n\r]")
_ESCAPES = {b"\t": b"\\t", b"\n": b"\\n", b"\r": b"\\r"}


def _shown(name: bytes) -> bytes:
    """A name as listings show it: tab, newline and carriage return escaped as
    ``\\t`` ``\\n`` ``\\r``, so a name cannot add fields or lines (gearmand prints
    them raw)."""
    return _CONTROL.sub(lambda m: _ESCAPES[m.group()], name) if _CONTROL.search(name) else name


def _args_error(word: bytes) -> bytes:
    return (
        b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+"
        + word
        + b"\r\n"
    )


def _field(value: bytes) -> bytes:
    """A value in a tab-separated line: tabs and line breaks become spaces."""
    return value.translate(_FIELD_SAFE)


_FIELD_SAFE = bytes.maketrans(b"\t\r\n", b"   ")


def _plussed(text: str) -> bytes:
    """Free text as one word of an ERR line (gearmand writes spaces as ``+``)."""
    line = " ".join(text.split())[:200]
    return line.replace(" ", "+").encode(errors="replace")


def _unknown(word: bytes) -> bytes:
    return b"ERR UNKNOWN_COMMAND Unknown+server+command" + word + b"\r\n"


def failed_listing(records: Iterable[FailedJob]) -> bytes:
    """``show failed jobs``: handle, function, unique, attempts, failed-at epoch,
    last reason; then ``.``."""
    lines = [
        b"%s\t%s\t%s\t%d\t%d\t%s\n"
        % (
            _field(r.handle),
            _field(r.function),
            _field(r.unique),
            r.attempts,
            int(r.failed_at),
            _field(r.reason.encode(errors="replace")),
        )
        for r in records
    ]
    return b"".join(lines) + b".\n"


MAX_RESULT_WAIT = 600.0
"""Seconds ``result HANDLE WAIT`` waits at most (a client waiting longer asks again)."""


def result_line(status: str, data: bytes) -> bytes:
    """``OK STATUS [BASE64]``: how a job ended and its data in base64 (none when
    empty), one line whatever the bytes."""
    encoded = b" " + base64.b64encode(data) if data else b""
    return b"OK " + status.encode() + encoded + b"\n"


class SharedAdmin(Protocol):
    """The admin answers a cluster's shared store gives (geartrain.cluster)."""

    async def status(self) -> bytes:
        """`status` over the cluster."""

    async def cancel(self, handle: bytes) -> bool | None:
        """`cancel job` of any member's job: True if cancelled, False if another
        member runs it, None if there is no such job."""

    async def members(self) -> bytes:
        """`cluster`: the members."""

    async def member_list(self) -> list[Member]:
        """The members, for the console."""


class Member(NamedTuple):
    """A member of the cluster as the shared store shows it."""

    id: int
    name: str
    """"HOST:PORT pid N": where its clients reach it, and its process."""
    started_age: float
    """Seconds since it started."""
    lease_age: float
    """Seconds since it last renewed its lease."""
    holds: int
    """Jobs it has claimed (running, or held for its workers)."""
    me: bool
    """The member answering."""

    @property
    def address(self) -> str:
        return self.name.split(" pid ", 1)[0]


class AdminCommands:
    """Answers admin lines for one server; ``shared`` in cluster mode."""

    def __init__(
        self, server: JobServer, verbose: Callable[[], str], shared: SharedAdmin | None = None
    ) -> None:
        self.server = server
        self.verbose = verbose
        self.shared = shared
        self.commands: dict[bytes, Callable[[Peer, list[bytes]], Answer]] = {
            b"workers": self.workers,
            b"status": self.status,
            b"prioritystatus": self.priority_status,
            b"cancel": self.cancel,
            b"show": self.show,
            b"create": self.create,
            b"drop": self.drop,
            b"maxqueue": self.maxqueue,
            b"getpid": lambda peer, words: b"OK %d\n" % os.getpid(),
            b"verbose": lambda peer, words: b"OK " + self.verbose().encode() + b"\n",
            b"version": lambda peer, words: b"OK " + __version__.encode() + b"\n",
            b"shutdown": self.shutdown,
            b"retry": self.failed_command,
            b"delete": self.failed_command,
            b"acl": AclCommands(server).line,
            b"pause": self.pause,
            b"resume": self.pause,
            b"paused": self.paused,
            b"result": self.result,
        }
        if shared is not None:
            self.commands[b"cluster"] = lambda peer, words: shared.members()

    def line(self, peer: Peer, line: bytes) -> Answer | None:
        """The reply to one admin line, or None to close the connection."""
        words = _SPACES.split(line)
        if len(words) > MAX_TOKENS:
            return None
        word = words[0].lower()
        command = self.commands.get(word)
        if command is None:
            return _unknown(words[0])
        access, action = self.server.access, ADMIN_COMMAND_ACTIONS.get(word)
        if (
            access is not None
            and action is not None
            and not access.may_admin(peer.identity, action)
        ):
            self.server.refused(peer, "admin", word)
            return ERR_DENIED
        return command(peer, words)

    def workers(self, peer: Peer, words: list[bytes]) -> bytes:
        out = []
        for p in self.server.peers:
            names = b"".join(b" " + _shown(f.name) for f in p.functions())
            out.append(b"%d %s %s :%s\n" % (p.fd, p.host.encode(), _shown(p.client_id), names))
        out.append(b".\n")
        return b"".join(out)

    def status(self, peer: Peer, words: list[bytes]) -> Answer:
        if self.shared is not None:
            return self.shared.status()
        out = [
            b"%s\t%d\t%d\t%d\n" % (_shown(f.name), f.total, f.running, len(f.workers))
            for f in self.server.functions.values()
        ]
        out.append(b".\n")
        return b"".join(out)

    def priority_status(self, peer: Peer, words: list[bytes]) -> bytes:
        # Future epoch jobs count as queued NORMAL jobs, as in gearmand's lists.
        out = [
            b"%s\t%d\t%d\t%d\t%d\n"
            % (_shown(f.name), f.queued[0], f.queued[1] + f.scheduled, f.queued[2], len(f.workers))
            for f in self.server.functions.values()
        ]
        out.append(b".\n")
        return b"".join(out)

    def cancel(self, peer: Peer, words: list[bytes]) -> Answer:
        if len(words) < 3:
            return _unknown(words[0])
        if len(words) != 3 or words[1].lower() != b"job":
            return ERR_INTERNAL
        if self.shared is not None:
            return self._cancel_shared(peer, self.shared, words[2])
        done = self.server.cancel(words[2])
        self._audit(peer, "cancel", words[2], int(done))
        return OK if done else ERR_UNKNOWN_JOB

    async def _cancel_shared(self, peer: Peer, shared: SharedAdmin, handle: bytes) -> bytes:
        done = await shared.cancel(handle)
        self._audit(peer, "cancel", handle, int(bool(done)))
        if done is None:
            return ERR_UNKNOWN_JOB
        return OK if done else ERR_CLAIMED

    def _who(self, peer: Peer) -> str:
        identified = self.server.access is not None
        return who(peer.identity if identified else None, peer.host, "admin")

    def _audit(self, peer: Peer, action: str, target: bytes | str, touched: int) -> None:
        """An operator's action, in the audit list with the console's."""
        if isinstance(target, bytes):
            target = target.decode(errors="replace")
        self.server.audit.record(self._who(peer), action, target, touched)

    def show(self, peer: Peer, words: list[bytes]) -> Answer:
        if len(words) < 2:
            return _unknown(words[0])
        if len(words) in (3, 4) and words[1].lower() == b"failed" and words[2].lower() == b"jobs":
            return self._show_failed(words[3] if len(words) == 4 else None)
        jobs = [j for j in self.server.jobs.values() if j.state is not JobState.PENDING]
        if len(words) == 3 and words[1].lower() == b"unique" and words[2].lower() == b"jobs":
            return b"".join([_shown(j.unique) + b"\n" for j in jobs]) + b".\n"
        if len(words) == 2 and words[1].lower() == b"jobs":
            lines = [
                b"%s\t%d\t%d\t%d\n" % (j.handle, j.retries, j.ignored, j.background) for j in jobs
            ]
            return b"".join(lines) + b".\n"
        return ERR_SHOW

    # -- the failed-job set (geartrain's own commands) -------------------------

    async def _show_failed(self, function: bytes | None) -> bytes:
        return failed_listing(await self.server.failed.records(function))

    def failed_command(self, peer: Peer, words: list[bytes]) -> Answer:
        """``retry|delete failed HANDLE`` and ``retry|delete failed all [FUNCTION]``."""
        if len(words) < 3 or words[1].lower() != b"failed" or len(words) > 4:
            return _args_error(words[0])
        action = words[0].lower()
        if words[2].lower() == b"all":
            return self._change_failed(peer, action, None, words[3] if len(words) == 4 else None)
        if len(words) != 3:
            return _args_error(words[0])
        return self._change_failed(peer, action, words[2], None)

    async def _change_failed(
        self, peer: Peer, action: bytes, handle: bytes | None, function: bytes | None
    ) -> bytes:
        """``action`` (retry or delete) one failed job, or all (of ``function``)."""
        failed = self.server.failed
        retry = action == b"retry"
        if handle is None:
            count = await (failed.retry_all(function) if retry else failed.delete_all(function))
            target = "all failed" + (f" of {function.decode(errors='replace')}" if function else "")
        else:
            done = await (failed.retry(handle) if retry else failed.delete(handle))
            count, target = int(done), handle.decode(errors="replace")
        self._audit(peer, action.decode(), target, count)
        if handle is None:
            return b"OK %d\n" % count
        return OK if count else ERR_UNKNOWN_JOB

    # -- kept results of background jobs (geartrain's own command) ---------------

    def result(self, peer: Peer, words: list[bytes]) -> Answer:
        """``result HANDLE [WAIT]``: how the job ended, or that it has not, in one
        line (see :func:`result_line`); with WAIT (seconds, or ``30s``, ``5m``), a
        job that has not ended is waited for that long, at most :data:`MAX_RESULT_WAIT`."""
        if len(words) not in (2, 3):
            return _args_error(words[0])
        handle, wait = words[1], 0.0
        if len(words) == 3:
            try:
                wait = min(parse_duration(words[2].decode("ascii")), MAX_RESULT_WAIT)
            except (UnicodeDecodeError, ValueError):
                return _args_error(words[0])
        return self._result_answer(handle, wait)

    async def _result_answer(self, handle: bytes, wait: float) -> bytes:
        server = self.server
        found = await wait_for_end(server.results, server.jobs, handle, wait)
        if found is None:
            return ERR_UNKNOWN_JOB
        status, record = found
        return result_line(status, record.data if record is not None else b"")

    def create(self, peer: Peer, words: list[bytes]) -> bytes:
        if len(words) == 3 and words[1].lower() == b"function":
            self.server.function(words[2])
            return OK
        return _args_error(words[0])

    def drop(self, peer: Peer, words: list[bytes]) -> bytes:
        if len(words) != 3 or words[1].lower() != b"function":
            return _args_error(words[0])
        dropped = self.server.drop_function(words[2])
        return OK if dropped == "dropped" else ERR_BUSY if dropped == "busy" else ERR_NO_FUNCTION

    def maxqueue(self, peer: Peer, words: list[bytes]) -> bytes:
        if len(words) == 1:
            return _args_error(words[0])
        numbers = [max(0, c_atoi(w)) for w in words[2:5]]
        if len(numbers) <= 1:
            # One number (or none, meaning no limit) applies to every priority.
            numbers = [numbers[0] if numbers else 0] * 3
        while len(numbers) < 3:
            numbers.append(0)
        f = self.server.functions.get(words[1])
        if f is not None:  # gearmand answers OK for an unknown function too
            f.max_queue = None if not any(numbers) else (numbers[0], numbers[1], numbers[2])
        return OK

    # -- paused functions (geartrain's own commands) ---------------------------

    def pause(self, peer: Peer, words: list[bytes]) -> Answer:
        """``pause FUNCTION`` and ``resume FUNCTION``: OK, also when it already was so."""
        if len(words) != 2 or not words[1]:
            return _args_error(words[0])
        paused = words[0].lower() == b"pause"
        return self._set_paused(words[1], paused, self._who(peer))

    async def _set_paused(self, name: bytes, paused: bool, by: str) -> bytes:
        try:
            await self.server.set_paused(name, paused, by)
        except Exception as error:  # each store has its own errors; all mean the same here
            # The change holds in this server; only keeping it across a restart failed.
            return b"ERR QUEUE_ERROR " + _plussed(f"not saved: {error}") + b"\r\n"
        return OK

    def paused(self, peer: Peer, words: list[bytes]) -> bytes:
        """``paused``: the paused function names, then ``.``."""
        if len(words) != 1:
            return _args_error(words[0])
        return b"".join(_shown(name) + b"\n" for name in self.server.pauses.listed()) + b".\n"

    def shutdown(self, peer: Peer, words: list[bytes]) -> bytes:
        # gearmand 1.1.15 removed this command; we keep it, but the protocol has no
        # authentication, so only local peers may use it unless configured otherwise.
        if not peer.loopback and not self.server.config.allow_remote_shutdown:
            return ERR_SHUTDOWN_REMOTE
        graceful = len(words) > 1 and words[1].lower() == b"graceful"
        self.server.shutdown(graceful)
        return OK
