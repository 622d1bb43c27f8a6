"""Each request packet's arguments, checked as gearmand checks them, and turned
into a call on the core (:mod:`.core`), or answered here where no job rule is
involved (echo, options, status).

Every type that is not a request (responses, UNUSED, ALL_YOURS) is answered
``ERROR INVALID_COMMAND``, as gearmand does.
"""

from __future__ import annotations

from collections.abc import Callable

from ..cron import sched_fields
from ..extensions import read_keep_result
from ..protocol import (
    ARGC,
    PACKETS,
    REQ,
    RES,
    SUBMIT_KINDS,
    Packet,
    PacketType,
    Sender,
    frame,
    pack,
)
from . import retry_extension
from .core import GRAB_JOB, GRAB_JOB_ALL, GRAB_JOB_UNIQ, MAX_UNIQUE, JobServer
from .model import NORMAL, PENDING, RUNNING, Peer
from .replies import (
    ERR_ARGS,
    ERR_COMMAND,
    ERR_HANDLE_SIZE,
    ERR_MAGIC,
    ERR_NO_JOB_DATA,
    ERR_NO_JOB_EXCEPTION,
    ERR_NO_JOB_RESULT,
    ERR_OPTION,
    MAX_NUMBER,
    c_atoi,
    c_strtol,
    error_packet,
)

__all__ = ["REQUESTS", "Requests"]

T = PacketType
Handler = Callable[[Peer, tuple[bytes, ...]], None]

MAX_HANDLE = 64  # gearmand's GEARMAND_JOB_HANDLE_SIZE, NUL included
MAX_CLIENT_ID = 127  # gearmand truncates SET_CLIENT_ID to this
MAX_OPTION = 63
MAX_TIMEOUT_DIGITS = 20  # gearmand closes on a longer CAN_DO_TIMEOUT argument
MIN_TIMEOUT = 1000  # gearmand raises shorter CAN_DO_TIMEOUTs to a second (connection.cc)
MAX_DENOMINATOR = 11  # gearmand closes on a longer WORK_STATUS denominator (server.cc)

_PEERS = (Sender.CLIENT, Sender.WORKER, Sender.ANY, Sender.BOTH)
REQUESTS = frozenset(t for t, spec in PACKETS.items() if spec.sender in _PEERS)
"""The packet types peers send the server: the ones :class:`Requests` handles."""

FIRST_EXTENSION = T.JOB_ATTEMPT  # types from here on are geartrain's, sent by the server only


class Requests:
    """The handler of every request packet, over one core."""

    def __init__(self, core: JobServer) -> None:
        self.core = core
        self.handlers: list[Handler | None] = [None] * 64
        for ptype, name in _HANDLER_NAMES.items():
            self.handlers[ptype] = getattr(self, name)
        for ptype, (priority, background) in SUBMIT_KINDS.items():
            self.handlers[ptype] = self._submit_handler(priority, background)

    def packet(self, peer: Peer, packet: Packet) -> None:
        """Handle one binary packet from ``peer``."""
        self.parts(peer, packet.magic, packet.type, packet.args)

    def parts(self, peer: Peer, magic: bytes, ptype: int, args: tuple[bytes, ...]) -> None:
        """Handle one binary packet from ``peer``, given as its parts (what the
        decoder's :meth:`~geartrain.protocol.Decoder.next_parts` returns)."""
        if magic != REQ:
            if ptype >= FIRST_EXTENSION:
                retry_extension.unknown_type(peer, ptype)
                return
            peer.send(ERR_MAGIC)
            return
        handler = self.handlers[ptype]
        if handler is None:
            if ptype >= FIRST_EXTENSION:
                retry_extension.unknown_type(peer, ptype)
                return
            peer.send(ERR_COMMAND)
            return
        if len(args) != ARGC[ptype]:
            peer.send(ERR_ARGS)
            return
        handler(peer, args)

    def _submit_handler(self, priority: int, background: bool) -> Handler:
        submit = self.core.submit

        def handler(peer: Peer, args: tuple[bytes, ...]) -> None:
            submit(peer, args[0], args[1], args[2], priority, background)

        return handler

    # -- workers ----------------------------------------------------------------

    def _h_can_do(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.core.can_do(peer, args[0], 0)

    def _h_can_do_timeout(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        raw = args[1]
        timeout = c_strtol(raw) if len(raw) <= MAX_TIMEOUT_DIGITS else None
        if timeout is None:  # gearmand closes on an overlong number or strtol overflow
            peer.close()
            return
        # gearmand's floor: Node libraries send seconds ("2"), meaning no 2 ms.
        self.core.can_do(peer, args[0], max(timeout, MIN_TIMEOUT) if timeout > 0 else 0)

    def _h_cant_do(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.core.drop_abilities(peer, args[0])

    def _h_reset_abilities(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.core.drop_abilities(peer, None)

    def _h_pre_sleep(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.core.pre_sleep(peer)

    def _h_grab_job(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.core.grab(peer, GRAB_JOB)

    def _h_grab_job_uniq(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.core.grab(peer, GRAB_JOB_UNIQ)

    def _h_grab_job_all(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.core.grab(peer, GRAB_JOB_ALL)

    def _h_work_status(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = self.core.owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_RESULT)
            return
        # gearmand closes on a denominator too long for a uint32; geartrain also
        # on an overlong numerator (gearmand reads any length: reading megabytes
        # of digits would hold up every other peer).
        if len(args[1]) > MAX_NUMBER or len(args[2]) > MAX_DENOMINATOR:
            peer.close()
            return
        numerator = c_atoi(args[1]) & 0xFFFFFFFF
        self.core.progress(job, numerator, c_atoi(args[2]) & 0xFFFFFFFF, args)

    def _h_work_data(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = self.core.owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_DATA)
            return
        self.core.forward(job, T.WORK_DATA, args)

    def _h_work_warning(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = self.core.owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_DATA)
            return
        self.core.forward(job, T.WORK_WARNING, args)

    def _h_work_complete(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = self.core.owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_RESULT)
            return
        self.core.complete(job, args)

    def _h_work_fail(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        if len(args[0]) >= MAX_HANDLE:
            peer.send(ERR_HANDLE_SIZE)
            return
        job = self.core.owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_RESULT)
            return
        self.core.fail(job)

    def _h_work_exception(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        job = self.core.owned(peer, args[0])
        if job is None:
            peer.send(ERR_NO_JOB_EXCEPTION)
            return
        self.core.exception(job, args)

    # -- clients ------------------------------------------------------------------

    def _h_get_status(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        core = self.core
        handle = args[0][: MAX_HANDLE - 1]
        job = core.jobs.get(handle)
        if job is None and core.keeper.status(peer, handle):
            return
        job = core.status_of(peer, job)
        if job is None or job.state is PENDING:
            reply = (handle, b"0", b"0", b"0", b"0")
        else:
            reply = (
                handle,
                b"1",
                b"1" if job.state is RUNNING else b"0",
                str(job.numerator).encode(),
                str(job.denominator).encode(),
            )
        peer.send(pack(RES, T.STATUS_RES, reply))

    def _h_get_status_unique(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        core = self.core
        unique = args[0][: MAX_UNIQUE - 1]
        job = core.table.by_unique(unique)
        if job is None and core.keeper.status_unique(peer, unique):
            return
        job = core.status_of(peer, job)
        if job is None:
            reply = (unique, b"0", b"0", b"0", b"0", b"0")
        else:
            reply = (
                unique,
                b"1",
                b"1" if job.state is RUNNING else b"0",
                str(job.numerator).encode(),
                str(job.denominator).encode(),
                str(len(job.clients or ())).encode(),
            )
        peer.send(pack(RES, T.STATUS_RES_UNIQUE, reply))

    def _h_echo_req(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        peer.send(frame(RES, T.ECHO_RES, args))

    def _h_set_client_id(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        peer.client_id = args[0][:MAX_CLIENT_ID] or b"-"

    def _h_option_req(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        """gearmand's ``exceptions``, and geartrain's opt-in extensions: the retries
        extension (.retry_extension, whose policies may be longer) and ``keep_result=``
        (.results)."""
        option = args[0]
        reply = retry_extension.option(self.core.table, peer, option)
        if reply is not None:
            peer.send(reply)
            return
        if len(option) > MAX_OPTION:
            peer.send(ERR_OPTION)
            return
        try:
            keep = read_keep_result(option)  # geartrain's extension (see .results)
        except ValueError as error:
            peer.send(error_packet(b"INVALID_ARGUMENTS", str(error).encode()))
            return
        if option.lower() == b"exceptions":
            peer.exceptions = True
        elif keep is not None:
            peer.keep_result = keep
        else:
            peer.send(ERR_OPTION)
            return
        peer.send(pack(RES, T.OPTION_RES, args))

    def _h_submit_job_epoch(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        when = c_strtol(args[2])
        if when is None:  # strtoll overflow (or an overlong number): gearmand closes
            peer.close()
            return
        self.core.submit(peer, args[0], args[1], args[3], NORMAL, True, when=max(0, when))

    def _h_submit_reduce_job(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.core.submit(peer, args[0], args[1], args[4], NORMAL, False, reducer=args[2])

    def _h_submit_reduce_job_background(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        self.core.submit(peer, args[0], args[1], args[4], NORMAL, True, reducer=args[2])

    def _h_submit_job_sched(self, peer: Peer, args: tuple[bytes, ...]) -> None:
        """A background job at the next minute that matches (gearmand never implemented
        it); a minute that matches now runs at once."""
        try:
            when = sched_fields(args[2], args[3], args[4], args[5], args[6]).next_after(
                self.core.clock() - 60
            )
        except ValueError as error:
            peer.send(error_packet(b"INVALID_ARGUMENTS", str(error).encode()))
            return
        if when is None:
            peer.send(error_packet(b"INVALID_ARGUMENTS", b"No time matches these fields"))
            return
        self.core.submit(peer, args[0], args[1], args[7], NORMAL, True, when=when)


_HANDLER_NAMES: dict[int, str] = {
    T.CAN_DO: "_h_can_do",
    T.CAN_DO_TIMEOUT: "_h_can_do_timeout",
    T.CANT_DO: "_h_cant_do",
    T.RESET_ABILITIES: "_h_reset_abilities",
    T.PRE_SLEEP: "_h_pre_sleep",
    T.GRAB_JOB: "_h_grab_job",
    T.GRAB_JOB_UNIQ: "_h_grab_job_uniq",
    T.GRAB_JOB_ALL: "_h_grab_job_all",
    T.WORK_STATUS: "_h_work_status",
    T.WORK_DATA: "_h_work_data",
    T.WORK_WARNING: "_h_work_warning",
    T.WORK_COMPLETE: "_h_work_complete",
    T.WORK_FAIL: "_h_work_fail",
    T.WORK_EXCEPTION: "_h_work_exception",
    T.GET_STATUS: "_h_get_status",
    T.GET_STATUS_UNIQUE: "_h_get_status_unique",
    T.ECHO_REQ: "_h_echo_req",
    T.SET_CLIENT_ID: "_h_set_client_id",
    T.OPTION_REQ: "_h_option_req",
    T.SUBMIT_JOB_EPOCH: "_h_submit_job_epoch",
    T.SUBMIT_REDUCE_JOB: "_h_submit_reduce_job",
    T.SUBMIT_REDUCE_JOB_BACKGROUND: "_h_submit_reduce_job_background",
    T.SUBMIT_JOB_SCHED: "_h_submit_job_sched",
}
"""Request packets and their handlers, besides the plain SUBMIT_* ones."""
