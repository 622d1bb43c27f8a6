"""geartrain's retries extension, the server's side: the options a peer sends
and the packet that tells a worker which attempt it runs.

A peer opts in with OPTION_REQ ``retries`` (gearmand answers ERROR
UNKNOWN_OPTION, so a library can tell the two apart).  Until it does, every
option below is answered UNKNOWN_OPTION as before, and nothing new is ever
sent to it.  After it:

- each JOB_ASSIGN* it gets is preceded by JOB_ATTEMPT (handle, attempt,
  attempts): the attempt's number, 1 for the first, and the attempts its policy
  allows;
- ``retry POLICY`` sets the retry policy of its next submission;
- ``retry-for POLICY FUNCTION`` declares the policy of a function it has
  registered (the latest declaration stays with the function).

POLICY is :meth:`geartrain.retry.Retry.to_text`'s text; :mod:`geartrain.retry`
writes and reads these options for both sides.  Each is answered
OPTION_RES with the option as sent, or ERROR INVALID_ARGUMENTS saying what is
wrong.  Which policy a job gets is :meth:`.policies.Policies.for_job`'s rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol import RES, PacketType, pack
from ..retry import OPTION, read_option
from .replies import error_packet

if TYPE_CHECKING:
    from .model import Job, Peer
    from .table import JobTable

__all__ = ["attempt_packet", "option", "unknown_type"]

T = PacketType


def option(table: JobTable, peer: Peer, text: bytes) -> bytes | None:
    """The answer to an OPTION_REQ of the extension; None for any other option,
    and for the extension's own before the peer asked for it (answered as before)."""
    if text == OPTION:
        peer.retry_extension = True
        return pack(RES, T.OPTION_RES, (text,))
    if not peer.retry_extension:
        return None
    try:
        found = read_option(text)
    except ValueError as error:
        return error_packet(b"INVALID_ARGUMENTS", str(error).encode())
    if found is None:
        return None
    retry, name = found
    if name is None:
        peer.next_retry = retry
    else:
        f = table.functions.get(name)
        if f is None or f not in peer.abilities:
            reason = b"retry-for: register the function (CAN_DO) before its retry policy"
            return error_packet(b"INVALID_ARGUMENTS", reason)
        f.retry = retry
    return pack(RES, T.OPTION_RES, (text,))


def attempt_packet(job: Job, attempts: int) -> bytes:
    """JOB_ATTEMPT for ``job`` as it is handed out: attempts so far, this one included."""
    args = (job.handle, str(job.failures + 1).encode(), str(attempts).encode())
    return pack(RES, T.JOB_ATTEMPT, args)


def unknown_type(peer: Peer, ptype: int) -> None:
    """A peer sent an extension packet type: answered and closed as any number
    the protocol does not know (as before the extension, and as gearmand closes)."""
    peer.send(error_packet(b"INVALID_COMMAND", f"Unknown packet type {ptype}".encode()))
    peer.close()
