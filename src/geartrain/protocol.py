"""The Gearman binary protocol as a sans-I/O codec.

Everything that knows how packets are framed lives in this module: the packet
table, encoding, and an incremental decoder that is fed bytes and hands back
packets or admin text lines.  It does no I/O and knows nothing of jobs.

Framing (PROTOCOL text, "Binary Packet"): a 12-byte header -- a 4-byte magic
(``\\0REQ`` or ``\\0RES``), a big-endian uint32 packet type and a big-endian
uint32 payload size -- then the payload, whose arguments are separated by NUL
bytes.  The last argument takes the rest of the payload and may itself hold
NULs.  A packet whose first byte is not NUL is a line of the text admin
protocol, ended by ``\\n``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from enum import Enum, IntEnum
from typing import Final, NamedTuple, cast

from . import blank_bytes
from .errors import ProtocolError

__all__ = [
    "ARGC",
    "DEFAULT_MAX_LINE_SIZE",
    "DEFAULT_MAX_PACKET_SIZE",
    "HEADER",
    "PACKETS",
    "REQ",
    "RES",
    "SUBMIT_KINDS",
    "AdminLine",
    "Decoder",
    "Packet",
    "PacketSpec",
    "PacketType",
    "Parts",
    "Sender",
    "encode",
    "frame",
    "pack",
    "submit_packet",
]

REQ: Final = b"\0REQ"
RES: Final = b"\0RES"

HEADER: Final = struct.Struct(">4sII")
"""Magic, type, payload size: the 12-byte header of every binary packet."""
# The header read as three numbers: the magic compared as a number, not a new bytes object.
_NUMBERS: Final = struct.Struct(">III")
_REQ_NUMBER: Final = 0x00524551  # "\0REQ"
_RES_NUMBER: Final = 0x00524553  # "\0RES"

# gearmand mallocs whatever size a header claims; we refuse anything larger than
# this before allocating.  64 MiB is far above any payload seen in practice
# (libgearman's own tests stop at 8 MiB) and small enough that a hostile header
# cannot exhaust memory.  `geartrain server --max-packet-size` changes it.
DEFAULT_MAX_PACKET_SIZE = 64 * 1024 * 1024

# Admin commands are a few words; gearmand's receive buffer is 8192 bytes.  A
# longer line without a newline is a broken or hostile peer.
DEFAULT_MAX_LINE_SIZE = 8192


class PacketType(IntEnum):
    """Packet type numbers (PROTOCOL text and gearmand 1.1 ``libgearman/command.cc``)."""

    CAN_DO = 1
    CANT_DO = 2
    RESET_ABILITIES = 3
    PRE_SLEEP = 4
    UNUSED = 5
    NOOP = 6
    SUBMIT_JOB = 7
    JOB_CREATED = 8
    GRAB_JOB = 9
    NO_JOB = 10
    JOB_ASSIGN = 11
    WORK_STATUS = 12
    WORK_COMPLETE = 13
    WORK_FAIL = 14
    GET_STATUS = 15
    ECHO_REQ = 16
    ECHO_RES = 17
    SUBMIT_JOB_BG = 18
    ERROR = 19
    STATUS_RES = 20
    SUBMIT_JOB_HIGH = 21
    SET_CLIENT_ID = 22
    CAN_DO_TIMEOUT = 23
    ALL_YOURS = 24
    WORK_EXCEPTION = 25
    OPTION_REQ = 26
    OPTION_RES = 27
    WORK_DATA = 28
    WORK_WARNING = 29
    GRAB_JOB_UNIQ = 30
    JOB_ASSIGN_UNIQ = 31
    SUBMIT_JOB_HIGH_BG = 32
    SUBMIT_JOB_LOW = 33
    SUBMIT_JOB_LOW_BG = 34
    SUBMIT_JOB_SCHED = 35
    SUBMIT_JOB_EPOCH = 36
    SUBMIT_REDUCE_JOB = 37
    SUBMIT_REDUCE_JOB_BACKGROUND = 38
    GRAB_JOB_ALL = 39
    JOB_ASSIGN_ALL = 40
    GET_STATUS_UNIQUE = 41
    STATUS_RES_UNIQUE = 42
    # geartrain's extensions, numbered apart from the protocol's own; sent only
    # to a peer that asked for them with OPTION_REQ (docs/compatibility.md).
    JOB_ATTEMPT = 50


class Sender(Enum):
    """Who sends a packet type, and so which magic it carries."""

    CLIENT = "client"  #: REQ from a client
    WORKER = "worker"  #: REQ from a worker
    ANY = "any"  #: REQ from either
    SERVER = "server"  #: RES from the server
    BOTH = "both"  #: REQ from a worker, forwarded as RES to clients (WORK_*)
    NOBODY = "nobody"  #: reserved or never valid


class PacketSpec(NamedTuple):
    """One row of the packet table."""

    args: tuple[str, ...]
    """Argument names; the last one takes the rest of the payload."""
    sender: Sender


_C, _W, _A, _S, _B, _N = (
    Sender.CLIENT,
    Sender.WORKER,
    Sender.ANY,
    Sender.SERVER,
    Sender.BOTH,
    Sender.NOBODY,
)
_SUBMIT = ("function", "unique", "data")
_REDUCE = ("function", "unique", "reducer", "aggregator", "data")
T = PacketType

PACKETS: dict[PacketType, PacketSpec] = {
    T.CAN_DO: PacketSpec(("function",), _W),
    T.CANT_DO: PacketSpec(("function",), _W),
    T.RESET_ABILITIES: PacketSpec((), _W),
    T.PRE_SLEEP: PacketSpec((), _W),
    T.UNUSED: PacketSpec((), _N),
    T.NOOP: PacketSpec((), _S),
    T.SUBMIT_JOB: PacketSpec(_SUBMIT, _C),
    T.JOB_CREATED: PacketSpec(("handle",), _S),
    T.GRAB_JOB: PacketSpec((), _W),
    T.NO_JOB: PacketSpec((), _S),
    T.JOB_ASSIGN: PacketSpec(("handle", "function", "data"), _S),
    T.WORK_STATUS: PacketSpec(("handle", "numerator", "denominator"), _B),
    T.WORK_COMPLETE: PacketSpec(("handle", "data"), _B),
    T.WORK_FAIL: PacketSpec(("handle",), _B),
    T.GET_STATUS: PacketSpec(("handle",), _C),
    T.ECHO_REQ: PacketSpec(("data",), _A),
    T.ECHO_RES: PacketSpec(("data",), _S),
    T.SUBMIT_JOB_BG: PacketSpec(_SUBMIT, _C),
    T.ERROR: PacketSpec(("code", "text"), _S),
    T.STATUS_RES: PacketSpec(("handle", "known", "running", "numerator", "denominator"), _S),
    T.SUBMIT_JOB_HIGH: PacketSpec(_SUBMIT, _C),
    T.SET_CLIENT_ID: PacketSpec(("client_id",), _A),
    T.CAN_DO_TIMEOUT: PacketSpec(("function", "timeout"), _W),
    T.ALL_YOURS: PacketSpec((), _W),
    T.WORK_EXCEPTION: PacketSpec(("handle", "data"), _B),
    T.OPTION_REQ: PacketSpec(("option",), _A),
    T.OPTION_RES: PacketSpec(("option",), _S),
    T.WORK_DATA: PacketSpec(("handle", "data"), _B),
    T.WORK_WARNING: PacketSpec(("handle", "data"), _B),
    T.GRAB_JOB_UNIQ: PacketSpec((), _W),
    T.JOB_ASSIGN_UNIQ: PacketSpec(("handle", "function", "unique", "data"), _S),
    T.SUBMIT_JOB_HIGH_BG: PacketSpec(_SUBMIT, _C),
    T.SUBMIT_JOB_LOW: PacketSpec(_SUBMIT, _C),
    T.SUBMIT_JOB_LOW_BG: PacketSpec(_SUBMIT, _C),
    T.SUBMIT_JOB_SCHED: PacketSpec(
        ("function", "unique", "minute", "hour", "mday", "month", "wday", "data"), _C
    ),
    T.SUBMIT_JOB_EPOCH: PacketSpec(("function", "unique", "epoch", "data"), _C),
    # PROTOCOL omits the aggregator argument; libgearman sends it (empty) and
    # gearmand expects it (libgearman/command.cc gives 4 args plus data).
    T.SUBMIT_REDUCE_JOB: PacketSpec(_REDUCE, _C),
    T.SUBMIT_REDUCE_JOB_BACKGROUND: PacketSpec(_REDUCE, _C),
    T.GRAB_JOB_ALL: PacketSpec((), _W),
    T.JOB_ASSIGN_ALL: PacketSpec(("handle", "function", "unique", "reducer", "data"), _S),
    T.GET_STATUS_UNIQUE: PacketSpec(("unique",), _C),
    T.STATUS_RES_UNIQUE: PacketSpec(
        ("unique", "known", "running", "numerator", "denominator", "clients"), _S
    ),
    # Before a JOB_ASSIGN*, to a worker that asked for OPTION_REQ "retries":
    # which attempt at the job this is (1 for the first) of how many its policy allows.
    T.JOB_ATTEMPT: PacketSpec(("handle", "attempt", "attempts"), _S),
}

SUBMIT_KINDS: dict[PacketType, tuple[int, bool]] = {
    T.SUBMIT_JOB: (1, False),
    T.SUBMIT_JOB_BG: (1, True),
    T.SUBMIT_JOB_HIGH: (0, False),
    T.SUBMIT_JOB_HIGH_BG: (0, True),
    T.SUBMIT_JOB_LOW: (2, False),
    T.SUBMIT_JOB_LOW_BG: (2, True),
}
"""The plain SUBMIT_* packets: (priority level: 0 high, 1 normal, 2 low; background)."""
_SUBMIT_PACKETS = {kind: ptype for ptype, kind in SUBMIT_KINDS.items()}
del T


def submit_packet(level: int, background: bool) -> PacketType:
    """The SUBMIT_* packet of a priority level and kind of job."""
    return _SUBMIT_PACKETS[level, background]


# Indexed by type number for the hot paths: the number of arguments, or -1 for
# numbers that are not in the table.
ARGC: Final[list[int]] = [-1] * 64
for _type, _spec in PACKETS.items():
    ARGC[_type] = len(_spec.args)
_TYPES: Final[list[PacketType | None]] = [None] * 64
for _type in PACKETS:
    _TYPES[_type] = _type


class Packet(NamedTuple):
    """A decoded or to-be-encoded binary packet."""

    magic: bytes
    """:data:`REQ` or :data:`RES`."""
    type: PacketType
    args: tuple[bytes, ...]


Parts = tuple[bytes, int, tuple[bytes, ...]]
"""A packet as (magic, type number, arguments), without the :class:`Packet` around it."""

# next_event makes a Packet per packet received: through tuple.__new__ it costs half
# of calling the class (whose generated __new__ is an interpreted function).
_tuple_new: Final = tuple.__new__


def _packet(magic: bytes, packet_type: PacketType, args: tuple[bytes, ...]) -> Packet:
    return _tuple_new(Packet, (magic, packet_type, args))


class AdminLine(NamedTuple):
    """One line of the text admin protocol, without its line ending."""

    line: bytes


LARGE: Final = 1 << 16
"""Payloads from this size on are framed and cut without an intermediate copy."""


def pack(magic: bytes, packet_type: int, args: tuple[bytes, ...] | list[bytes]) -> bytes:
    """Frame arguments as one packet (the fast path: no validation)."""
    framed = frame(magic, packet_type, args)
    return framed if isinstance(framed, bytes) else b"".join(framed)


def frame(
    magic: bytes, packet_type: int, args: tuple[bytes, ...] | list[bytes]
) -> bytes | list[bytes]:
    """Like :func:`pack`, but a large packet comes as a list of pieces to write
    as they are (``writelines``), so its payload is never copied here."""
    if not isinstance(args, tuple):
        args = tuple(args)  # typed as a tuple, the compiled build walks it natively
    size = len(args) - 1
    for arg in args:
        size += len(arg)
    if size < LARGE:
        if size < 0:  # no arguments
            return HEADER.pack(magic, packet_type, 0)
        payload = args[0] if len(args) == 1 else b"\0".join(args)
        return HEADER.pack(magic, packet_type, size) + payload
    parts = [HEADER.pack(magic, packet_type, size)]
    for arg in args[:-1]:
        parts += (arg, b"\0")
    parts.append(args[-1])
    return parts


def encode(packet: Packet) -> bytes:
    """Encode a packet, checking its argument count against the table.

    Raises:
        ValueError: the packet has the wrong number of arguments, or an
            argument other than the last holds a NUL byte.
    """
    expected = len(PACKETS[packet.type].args)
    if len(packet.args) != expected:
        raise ValueError(f"{packet.type.name} takes {expected} arguments, got {len(packet.args)}")
    if any(b"\0" in arg for arg in packet.args[:-1]):
        raise ValueError(f"{packet.type.name}: only the last argument may contain NUL")
    return pack(packet.magic, packet.type, packet.args)


RECV_SIZE: Final = 1 << 14
"""The first buffer and the smallest space offered to one read.  Small, because a
server holds thousands of mostly idle connections."""

LARGE_RECV_SIZE: Final = 1 << 17
"""The space offered to one read while a stream carries large packets that fit
it: each then arrives whole in one read and is cut out with one copy, where a
body received apart costs more reads and calls than its copies save.  Streams
with no large packets, or larger ones (read straight into place), keep
:data:`RECV_SIZE`."""

KEEP_SIZE: Final = 1 << 23
"""An idle buffer larger than this (it held a very large packet) is given back.
Smaller ones are kept: allocating and faulting in fresh megabytes for every
large packet costs more than the copies the buffer saves."""

CHUNK_SIZE: Final = 1 << 18
"""The largest piece a large packet's body is received in.  Pieces grow with the
bytes received (memory follows what arrives), are never copied while the body
grows, and are joined once at the end.  Once the payload is allocated whole, a
read takes as much of it as the kernel holds (one read where it is all there,
as uvloop would read on anyway while reads fill the space offered)."""

POOL_SIZE = 1 << 25
"""Bytes of free large-packet pieces kept for the next large packet, process-wide.
A fresh piece is zero-filled by its allocation, a pass over every byte that a
kept one skips; :func:`drop_pieces` gives them back (the idle trimmer)."""

_EMPTY = bytearray()
_pool: dict[int, list[bytearray]] = {}  # free pieces by size: powers of two
_pool_bytes = 0


def _piece(size: int) -> bytearray:
    """A piece of ``size`` bytes (a power of two), a kept one if there is one."""
    global _pool_bytes
    free = _pool.get(size)
    if free:
        _pool_bytes -= size
        return free.pop()
    return bytearray(size)


def _keep_pieces(pieces: list[bytearray]) -> None:
    global _pool_bytes
    for piece in pieces:
        size = len(piece)
        if size & (size - 1) or _pool_bytes + size > POOL_SIZE:
            continue  # a first piece (any size), or the pool is full
        _pool.setdefault(size, []).append(piece)
        _pool_bytes += size


def drop_pieces() -> int:
    """Give back the kept pieces; returns their bytes."""
    global _pool_bytes
    dropped, _pool_bytes = _pool_bytes, 0
    _pool.clear()
    return dropped


class Decoder:
    """Turns a byte stream into :class:`Packet` and :class:`AdminLine` events.

    Bytes go into one receive buffer: either given with :meth:`feed`, or read
    straight into it (:meth:`get_buffer` and :meth:`buffer_updated`, the
    ``asyncio.BufferedProtocol`` calls), so a large packet is received in
    place.  Take events with :meth:`next_event` until it returns ``None``.

    Memory follows the bytes received, not the size a header announces: a
    small packet's bytes double the buffer as they arrive, and the body of a
    large one (from :data:`LARGE` bytes) that does not fit is received in
    pieces, each at most as large as what has arrived; so a 12-byte header
    claiming 64 MiB costs a few kilobytes until the bytes come.  Once half the
    body is in, its last argument (the payload) is allocated whole as the
    ``bytes`` it will be (:mod:`.blank_bytes`), what has arrived of it is copied
    there, and the rest is read straight into it: the second half of a large
    payload is copied once, by the kernel.  Given ``waiting`` (a function saying
    how many bytes the kernel holds for this stream, :func:`.readable.waiting`),
    bytes that wait there count as arrived: a body the sender has already
    written is allocated whole at its header and never copied but by the kernel,
    and so is a body no larger than one the stream has already delivered whole
    (a peer that sends what it announces; :attr:`buffered` counts such a body
    whole from its header, so a limit on input bounds what it holds).
    Reads take :data:`RECV_SIZE` at a time, and :data:`LARGE_RECV_SIZE` after a
    large packet that fits it: streams that carry such packets get each whole
    in one read, idle ones keep small buffers.
    No buffer is allocated before the first read, and :meth:`release` gives it
    back while nothing is pending.

    ``next_event`` raises :class:`~geartrain.errors.ProtocolError` for input
    that cannot be framed (bad magic, unknown type, size over the limit, an
    overlong text line).  After that the stream cannot be resynchronised and
    the connection must be closed.  A packet with too few arguments is still
    framed correctly, so it is returned with ``args`` shorter than the table
    says; callers decide what to do about it.
    """

    __slots__ = (
        "_buf",
        "_view",
        "_recv_size",
        "_delivered",
        "_start",
        "_end",
        "_need",
        "_body",
        "_body_head",
        "_body_size",
        "_body_have",
        "_chunk_fill",
        "_heads",
        "_tail",
        "_tail_view",
        "_tail_fill",
        "max_packet_size",
        "max_line_size",
        "waiting",
    )

    def __init__(
        self,
        *,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_line_size: int = DEFAULT_MAX_LINE_SIZE,
        waiting: Callable[[], int] | None = None,
    ) -> None:
        self._buf = _EMPTY
        self._view = memoryview(_EMPTY)
        self._recv_size = RECV_SIZE  # grows once a large packet has arrived
        self._delivered = 0  # the largest body this stream has delivered whole
        self._start = 0  # first byte not yet returned as an event
        self._end = 0  # end of the received bytes
        self._need = 0  # size of the packet being received, once its header is in
        self._body: list[bytearray] | None = None  # a large packet's body, in pieces
        self._body_head = (REQ, 0)  # its magic and type
        self._body_size = 0
        self._body_have = 0  # bytes of it received
        self._chunk_fill = 0  # bytes in its last piece
        self._heads: tuple[bytes, ...] = ()  # its arguments before the last, once cut
        self._tail: bytes | None = None  # its last argument, read in place
        self._tail_view = memoryview(_EMPTY)  # writable view of the last argument
        self._tail_fill = 0  # bytes of it received
        self.max_packet_size = max_packet_size
        self.max_line_size = max_line_size
        self.waiting = waiting  # bytes the kernel holds for us, where the caller can tell

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as an event, counting a body whose
        payload is allocated as whole (so that limits on input count what is held)."""
        body = self._body_size if self._tail is not None else self._body_have
        return self._end - self._start + body

    @property
    def allocated(self) -> int:
        """Size of the receive buffer and of a large packet's pieces."""
        tail = len(self._tail) if self._tail is not None else 0
        return len(self._buf) + (sum(map(len, self._body)) if self._body else 0) + tail

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Writable space for the next read.

        ``sizehint`` is ignored (asyncio allows any size): uvloop always asks
        for 64 KiB, which would make every connection's buffer that large."""
        if self._in_body():
            return self._body_space()
        return self._space(self._recv_size)

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written at the start of the last :meth:`get_buffer`."""
        if self._in_body():
            self._body_have += nbytes
            if self._tail is None:
                self._chunk_fill += nbytes
            else:
                self._tail_fill += nbytes
        else:
            self._end += nbytes

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        view = memoryview(data)
        while view:
            space = self._body_space() if self._in_body() else self._space(len(view))
            size = min(len(space), len(view))
            space[:size] = view[:size]
            self.buffer_updated(size)
            view = view[size:]

    def _in_body(self) -> bool:
        """Whether the next bytes belong to a large packet's body."""
        return self._body is not None and self._body_have < self._body_size

    def _body_space(self) -> memoryview:
        assert self._body is not None
        if self._tail is not None:
            return self._tail_space()
        last = self._body[-1]
        fill = self._chunk_fill
        if fill == len(last):
            arrived = self._body_have
            if 2 * arrived < self._body_size and self.waiting is not None:
                arrived += self.waiting()  # the kernel has it: as good as arrived
            pieces = self._body
            if 2 * arrived >= self._body_size and self._to_tail(_spans(pieces)):
                _keep_pieces(pieces)  # their bytes are copied out
                return self._tail_space()
            # A new piece, at most as large as what has arrived (memory follows the
            # bytes): a power of two, so that a kept one fits the next packet.
            size = CHUNK_SIZE
            while size > RECV_SIZE and size > self._body_have:
                size >>= 1
            last = _piece(size)
            self._body.append(last)
            self._chunk_fill = fill = 0
        # Never past the body's end, so what follows goes to the buffer.
        return memoryview(last)[fill : fill + self._body_size - self._body_have]

    def _tail_space(self) -> memoryview:
        return self._tail_view[self._tail_fill :]

    def _to_tail(self, spans: list[_Span]) -> bool:
        """Half the body is in, or the stream has earned its allocation whole
        (``spans``: what has arrived of it): cut the arguments before the last
        out of it, and go on receiving the last in place."""
        argc = ARGC[self._body_head[1]]
        if argc == 0 or not blank_bytes.AVAILABLE:
            return False
        heads, rest = _split(spans, argc - 1)
        if len(heads) < argc - 1:
            return False  # the first arguments are longer than half the body
        size = self._body_size - self._body_have + sum(map(len, rest))
        if size < RECV_SIZE:
            return False  # not worth it (and blank() needs more than one byte)
        tail, view = blank_bytes.blank(size)
        fill = 0
        for part in rest:
            view[fill : fill + len(part)] = part
            fill += len(part)
        self._heads, self._tail, self._tail_view, self._tail_fill = tuple(heads), tail, view, fill
        self._body = []
        return True

    def release(self, force: bool = False) -> bool:
        """Give back the buffer if nothing is pending (or ``force``: drop what
        is); True if one was freed."""
        if force:
            self._body = None
            self._body_have = 0
            self._drop_tail()
        elif self._start != self._end or self._body is not None:
            return False
        if self._buf is _EMPTY:
            return False
        self._buf = _EMPTY
        self._view = memoryview(_EMPTY)
        self._start = self._end = self._need = 0
        return True

    def _space(self, least: int) -> memoryview:
        pending = self._end - self._start
        if pending == 0:
            # All consumed (the usual case between reads): start over at the front.
            self._start = self._end = 0
            if least <= len(self._buf):
                return self._view
        elif self._need:
            # Room for as much again as has arrived of this packet, at most what
            # is still missing: the buffer doubles as its bytes come.
            least = max(least, min(self._need - pending, pending))
        if len(self._buf) - self._end < least:
            self._make_room(least)
        return self._view[self._end :]

    def _make_room(self, want: int) -> None:
        pending = self._end - self._start
        size = len(self._buf)
        if pending == 0 and size > KEEP_SIZE:
            size = self._recv_size  # give back the memory of a large packet
        size = max(size, self._recv_size)
        while size < pending + want:
            size *= 2
        old = self._view
        if size == len(self._buf):
            # Big enough once the consumed front is dropped (usually a few bytes move;
            # through a copy, as the two ranges may overlap).
            self._buf[:pending] = bytes(old[self._start : self._end])
        else:
            buf = bytearray(size)
            buf[:pending] = old[self._start : self._end]
            # The old view is not released: the transport may still hold it for
            # the read in progress; it goes when the last reference does.
            self._buf = buf
            self._view = memoryview(buf)
        self._start, self._end = 0, pending

    def next_event(self) -> Packet | AdminLine | None:
        """Return the next complete event, or ``None`` if more bytes are needed."""
        event = self.next_parts()
        if event is None or isinstance(event, AdminLine):
            return event
        return _packet(event[0], cast(PacketType, _TYPES[event[1]]), event[2])

    def next_parts(self) -> Parts | AdminLine | None:
        """:meth:`next_event` with a packet as a plain tuple (magic, type number,
        arguments), cheaper to make than a :class:`Packet`: the server's hot path."""
        if self._body is not None:
            return None if self._in_body() else self._take_body()
        pos = self._start
        avail = self._end - pos
        if avail <= 0:
            return None
        buf = self._buf
        if buf[pos] != 0:
            return self._next_line(buf, pos)
        if avail < 12:
            return None
        header = _NUMBERS.unpack_from(buf, pos)
        # Typed, so that the compiled build compares them as machine integers.
        number: int = header[0]
        ptype: int = header[1]
        size: int = header[2]
        magic = _magic(number)
        argc = ARGC[ptype] if ptype < 64 else -1
        if argc < 0:
            raise ProtocolError("INVALID_COMMAND", f"Unknown packet type {ptype}")
        if size > self.max_packet_size:
            raise ProtocolError(
                "ARGUMENT_TOO_LARGE",
                f"Packet size {size} exceeds the limit of {self.max_packet_size}",
            )
        end = pos + 12 + size
        if self._end < end:
            self._await(magic, ptype, pos + 12, size)
            return None
        self._need = 0
        self._start = end
        if argc == 0:
            args: tuple[bytes, ...] = ()
        elif argc == 1:
            args = (bytes(self._view[pos + 12 : end]),)
        elif size >= LARGE:
            args = _cut([(buf, pos + 12, end)], argc)
        else:
            args = tuple(bytes(self._view[pos + 12 : end]).split(b"\0", argc - 1))
        if size >= LARGE:
            self._large_arrived(size)
        return magic, ptype, args

    def _await(self, magic: bytes, ptype: int, start: int, size: int) -> None:
        """Wait for the rest of a packet: a small one in the buffer, a large one's
        body in pieces, of which what has arrived is the first."""
        if size < LARGE:
            self._need = 12 + size
            return
        self._body_head = (magic, ptype)
        self._body_size = size
        self._body_have = arrived = self._end - start
        waiting = self.waiting
        if not (
            (size <= self._delivered or (waiting is not None and 2 * (arrived + waiting()) >= size))
            and self._to_tail([(self._buf, start, self._end)])
        ):
            self._body = [bytearray(self._view[start : self._end])]
            self._chunk_fill = arrived
        self._start = self._end = self._need = 0

    def _large_arrived(self, size: int) -> None:
        """A large packet's body of ``size`` bytes has arrived whole."""
        self._recv_size = _read_size_after(size)
        if size > self._delivered:
            self._delivered = size

    def _drop_tail(self) -> None:
        self._heads, self._tail, self._tail_view = (), None, memoryview(_EMPTY)
        self._tail_fill = 0

    def _take_body(self) -> Parts:
        assert self._body is not None
        pieces, self._body = self._body, None
        self._body_have = 0
        magic, ptype = self._body_head
        argc = ARGC[ptype]
        self._large_arrived(self._body_size)
        tail = self._tail
        if tail is not None:
            args = (*self._heads, tail)
            self._drop_tail()
            return magic, ptype, args
        spans = _spans(pieces)
        spans[-1] = (pieces[-1], 0, self._chunk_fill)  # the last may be partly filled
        args = _cut(spans, argc) if argc else ()
        _keep_pieces(pieces)  # _cut copied what it needs
        return magic, ptype, args

    def _next_line(self, buf: bytearray, pos: int) -> AdminLine | None:
        end = buf.find(b"\n", pos, self._end)
        if end < 0:
            if self._end - pos > self.max_line_size:
                raise ProtocolError("INVALID_PACKET", "Admin line too long")
            return None
        if end - pos > self.max_line_size:
            raise ProtocolError("INVALID_PACKET", "Admin line too long")
        self._start = end + 1
        if end > pos and buf[end - 1] == 13:  # "\r"
            end -= 1
        return AdminLine(bytes(self._view[pos:end]))


def _read_size_after(size: int) -> int:
    """The read size once a large packet of a ``size``-byte body has arrived:
    larger while such packets fit one read; larger ones are read into place."""
    return LARGE_RECV_SIZE if 12 + size <= LARGE_RECV_SIZE else RECV_SIZE


def _magic(number: int) -> bytes:
    """The header's first four bytes read as a number: REQ or RES, or an error."""
    if number == _REQ_NUMBER:
        return REQ
    if number == _RES_NUMBER:
        return RES
    raise ProtocolError("INVALID_MAGIC", "Invalid magic")


_Span = tuple[bytearray, int, int]
"""``(buffer, start, end)``: a run of received bytes."""


def _spans(pieces: list[bytearray]) -> list[_Span]:
    return [(p, 0, len(p)) for p in pieces]


def _split(spans: list[_Span], count: int) -> tuple[list[bytes], list[memoryview]]:
    """The first ``count`` NUL-terminated arguments of ``spans`` (fewer if the
    NULs run out), and views of what follows the last of them."""
    heads: list[bytes] = []
    rest: list[memoryview] = []  # what has come since the last NUL
    for buf, start, end in spans:
        view = memoryview(buf)
        while len(heads) < count:
            nul = buf.find(b"\0", start, end)
            if nul < 0:
                break
            rest.append(view[start:nul])
            heads.append(b"".join(rest))
            rest.clear()
            start = nul + 1
        rest.append(view[start:end])
    return heads, rest


def _cut(spans: list[_Span], argc: int) -> tuple[bytes, ...]:
    """Split a large payload, held in spans, into its arguments (fewer if NULs
    are missing, as ``bytes.split`` does), copying each byte once."""
    heads, rest = _split(spans, argc - 1)
    heads.append(b"".join(rest))
    return tuple(heads)
