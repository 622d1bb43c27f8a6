"""The text admin protocol over the server core, byte for byte as gearmand answers.

Lines arrive already split from the binary stream (the codec strips ``\\r\\n``
or ``\\n``; gearmand loses the last character of a line ended by a bare
``\\n``, we do not).  Listings end in ``\\n`` and a ``.`` line; ``OK`` and
``ERR`` replies end in ``\\r\\n``, except ``OK <value>`` replies, which end in
``\\n``: all as gearmand 1.1 (``libgearman-server/text.cc``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from ..__about__ import __version__
from .access import ADMIN_COMMAND_ACTIONS
from .acl_admin import AclCommands
from .core import JobServer
from .jobs import JobState, Peer
from .replies import c_atoi

__all__ = ["MAX_TOKENS", "AdminCommands"]

MAX_TOKENS = 5  # gearmand closes the connection on a line with more words

OK = b"OK\r\n"
ERR_UNKNOWN_JOB = b"ERR UNKNOWN_JOB\r\n"
ERR_INTERNAL = b"ERR UNKNOWN_ERROR\r\n"
ERR_SHOW = b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
ERR_BUSY = b"ERR there are still connected workers or executing clients\r\n"
ERR_NO_FUNCTION = b"ERR function not found\r\n"
ERR_SHUTDOWN_REMOTE = b"ERR PERMISSION_DENIED shutdown+is+accepted+only+from+loopback\r\n"
ERR_DENIED = b"ERR PERMISSION_DENIED not+allowed+by+the+access+rules\r\n"

_SPACES = re.compile(rb" +")


def _args_error(word: bytes) -> bytes:
    return (
        b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+"
        + word
        + b"\r\n"
    )


def _unknown(word: bytes) -> bytes:
    return b"ERR UNKNOWN_COMMAND Unknown+server+command" + word + b"\r\n"


class AdminCommands:
    """Answers admin lines for one server."""

    def __init__(self, server: JobServer, verbose: Callable[[], str]) -> None:
        self.server = server
        self.verbose = verbose
        self.commands: dict[bytes, Callable[[Peer, list[bytes]], bytes]] = {
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
            b"acl": AclCommands(server).line,
        }

    def line(self, peer: Peer, line: bytes) -> bytes | None:
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
            names = b"".join(b" " + f.name for f, _t in p.abilities)
            out.append(b"%d %s %s :%s\n" % (p.fd, p.host.encode(), p.client_id, names))
        out.append(b".\n")
        return b"".join(out)

    def status(self, peer: Peer, words: list[bytes]) -> bytes:
        out = [
            b"%s\t%d\t%d\t%d\n" % (f.name, f.total, f.running, len(f.workers))
            for f in self.server.functions.values()
        ]
        out.append(b".\n")
        return b"".join(out)

    def priority_status(self, peer: Peer, words: list[bytes]) -> bytes:
        # Future epoch jobs count as queued NORMAL jobs, as in gearmand's lists.
        out = [
            b"%s\t%d\t%d\t%d\t%d\n"
            % (f.name, f.queued[0], f.queued[1] + f.scheduled, f.queued[2], len(f.workers))
            for f in self.server.functions.values()
        ]
        out.append(b".\n")
        return b"".join(out)

    def cancel(self, peer: Peer, words: list[bytes]) -> bytes:
        if len(words) < 3:
            return _unknown(words[0])
        if len(words) != 3 or words[1].lower() != b"job":
            return ERR_INTERNAL
        return OK if self.server.cancel(words[2]) else ERR_UNKNOWN_JOB

    def show(self, peer: Peer, words: list[bytes]) -> bytes:
        if len(words) < 2:
            return _unknown(words[0])
        jobs = [j for j in self.server.jobs.values() if j.state is not JobState.PENDING]
        if len(words) == 3 and words[1].lower() == b"unique" and words[2].lower() == b"jobs":
            return b"".join([j.unique + b"\n" for j in jobs]) + b".\n"
        if len(words) == 2 and words[1].lower() == b"jobs":
            lines = [
                b"%s\t%d\t%d\t%d\n" % (j.handle, j.retries, j.ignored, j.background) for j in jobs
            ]
            return b"".join(lines) + b".\n"
        return ERR_SHOW

    def create(self, peer: Peer, words: list[bytes]) -> bytes:
        if len(words) == 3 and words[1].lower() == b"function":
            self.server.function(words[2])
            return OK
        return _args_error(words[0])

    def drop(self, peer: Peer, words: list[bytes]) -> bytes:
        if len(words) != 3 or words[1].lower() != b"function":
            return _args_error(words[0])
        name = words[2].lower()
        for f in self.server.functions.values():
            if f.name.lower() == name:
                # gearmand drops a function with queued jobs and loses them; a
                # function that still holds jobs is refused here instead.
                if f.workers or f.total:
                    return ERR_BUSY
                self.server.drop_function(f)
                return OK
        return ERR_NO_FUNCTION

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

    def shutdown(self, peer: Peer, words: list[bytes]) -> bytes:
        # gearmand 1.1.15 removed this command; we keep it, but the protocol has no
        # authentication, so only local peers may use it unless configured otherwise.
        if not peer.loopback and not self.server.config.allow_remote_shutdown:
            return ERR_SHUTDOWN_REMOTE
        graceful = len(words) > 1 and words[1].lower() == b"graceful"
        self.server.shutdown(graceful)
        return OK
