"""The sans-I/O codec: packets round-trip, feeding is incremental, bad input is refused."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geartrain.errors import ProtocolError
from geartrain.protocol import (
    CHUNK_SIZE,
    HEADER,
    KEEP_SIZE,
    LARGE,
    LARGE_RECV_SIZE,
    PACKETS,
    POOL_SIZE,
    RECV_SIZE,
    REQ,
    RES,
    AdminLine,
    Decoder,
    Packet,
    PacketType,
    drop_pieces,
    encode,
    pack,
)
from geartrain.readable import waiting

arg = st.binary(max_size=40).filter(lambda b: b"\0" not in b)


def sample_args(ptype: PacketType, last: bytes = b"da\0ta") -> tuple[bytes, ...]:
    n = len(PACKETS[ptype].args)
    if n == 0:
        return ()
    return tuple(f"a{i}".encode() for i in range(n - 1)) + (last,)


def decode_all(data: bytes, **limits: int) -> list[Packet | AdminLine]:
    decoder = Decoder(**limits)
    decoder.feed(data)
    events = []
    while (event := decoder.next_event()) is not None:
        events.append(event)
    return events


def test_table_covers_1_to_42_and_the_extensions() -> None:
    assert sorted(PACKETS) == [*range(1, 43), PacketType.JOB_ATTEMPT]
    assert PacketType.SUBMIT_REDUCE_JOB == 37
    assert PACKETS[PacketType.SUBMIT_REDUCE_JOB].args[-2:] == ("aggregator", "data")


@pytest.mark.parametrize("ptype", list(PacketType))
@pytest.mark.parametrize("magic", [REQ, RES])
def test_every_packet_round_trips(ptype: PacketType, magic: bytes) -> None:
    packet = Packet(magic, ptype, sample_args(ptype))
    assert decode_all(encode(packet)) == [packet]


def test_header_layout() -> None:
    data = encode(Packet(REQ, PacketType.SUBMIT_JOB, (b"f", b"u", b"x")))
    assert data == b"\0REQ" + struct.pack(">II", 7, 5) + b"f\0u\0x"


def test_last_argument_keeps_nul_bytes() -> None:
    data = b"\0" * 3 + b"\xff\0"
    [packet] = decode_all(pack(RES, PacketType.WORK_COMPLETE, (b"H:x:1", data)))
    assert isinstance(packet, Packet)
    assert packet.args == (b"H:x:1", data)


def test_zero_argument_packet_ignores_payload() -> None:
    raw = HEADER.pack(REQ, PacketType.GRAB_JOB, 3) + b"abc"
    assert decode_all(raw) == [Packet(REQ, PacketType.GRAB_JOB, ())]


def test_too_few_arguments_are_returned_short() -> None:
    [packet] = decode_all(pack(REQ, PacketType.SUBMIT_JOB, (b"only-function",)))
    assert isinstance(packet, Packet)
    assert packet.args == (b"only-function",)


@pytest.mark.parametrize(
    ("payload", "args"),
    [
        (b"", (b"",)),  # no NUL at all: one argument
        (b"fn", (b"fn",)),
        (b"fn\0", (b"fn", b"")),  # a missing NUL: the arguments there are
        (b"fn\0uniq\0", (b"fn", b"uniq", b"")),  # an empty last argument
        (b"\0\0", (b"", b"", b"")),
        (b"fn\0\0da\0ta\0", (b"fn", b"", b"da\0ta\0")),
    ],
)
def test_malformed_small_packets_split_at_the_nuls_there_are(
    payload: bytes, args: tuple[bytes, ...]
) -> None:
    raw = HEADER.pack(REQ, PacketType.SUBMIT_JOB, len(payload)) + payload
    assert decode_all(raw) == [Packet(REQ, PacketType.SUBMIT_JOB, args)]


def test_encode_checks_argument_count_and_nuls() -> None:
    with pytest.raises(ValueError, match="takes 3 arguments"):
        encode(Packet(REQ, PacketType.SUBMIT_JOB, (b"f",)))
    with pytest.raises(ValueError, match="only the last"):
        encode(Packet(REQ, PacketType.SUBMIT_JOB, (b"f\0", b"", b"")))


def test_byte_at_a_time_feeding() -> None:
    stream = (
        pack(REQ, PacketType.CAN_DO, (b"reverse",))
        + b"status\r\n"
        + pack(REQ, PacketType.SUBMIT_JOB, (b"reverse", b"", b"x" * 300))
        + b"workers\n"
    )
    decoder = Decoder()
    events: list[Packet | AdminLine] = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        while (event := decoder.next_event()) is not None:
            events.append(event)
    assert events == decode_all(stream)
    assert [type(e).__name__ for e in events] == ["Packet", "AdminLine", "Packet", "AdminLine"]
    assert events[1] == AdminLine(b"status")
    assert events[3] == AdminLine(b"workers")  # a bare \n loses nothing
    assert decoder.buffered == 0


def test_admin_line_endings() -> None:
    assert decode_all(b"create function abc\n") == [AdminLine(b"create function abc")]
    assert decode_all(b"create function abc\r\n") == [AdminLine(b"create function abc")]
    assert decode_all(b"\n") == [AdminLine(b"")]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\0XYZ" + struct.pack(">II", 1, 0), "INVALID_MAGIC"),
        (HEADER.pack(REQ, 0, 0), "INVALID_COMMAND"),
        (HEADER.pack(REQ, 43, 0), "INVALID_COMMAND"),
        (HEADER.pack(REQ, 2**32 - 1, 0), "INVALID_COMMAND"),
    ],
)
def test_unframeable_input_raises(raw: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_all(raw)
    assert caught.value.code == code  # the server closes such a connection (test_bad_input)


def test_oversized_packet_refused_from_the_header_alone() -> None:
    decoder = Decoder(max_packet_size=1024)
    decoder.feed(HEADER.pack(REQ, PacketType.SUBMIT_JOB, 2**32 - 1))
    with pytest.raises(ProtocolError) as caught:
        decoder.next_event()
    assert caught.value.code == "ARGUMENT_TOO_LARGE"


def test_endless_admin_line_refused() -> None:
    decoder = Decoder(max_line_size=100)
    decoder.feed(b"x" * 101)
    with pytest.raises(ProtocolError):
        decoder.next_event()
    decoder = Decoder(max_line_size=100)
    decoder.feed(b"x" * 50)
    assert decoder.next_event() is None  # still within the limit: wait for more


@given(
    st.lists(
        st.tuples(
            st.sampled_from([REQ, RES]),
            st.sampled_from(list(PacketType)),
            st.lists(arg, min_size=8, max_size=8),
            st.binary(max_size=100),
        ),
        max_size=20,
    ),
    st.lists(st.integers(min_value=1, max_value=50), max_size=30),
)
def test_any_packets_any_chunking(
    specs: list[tuple[bytes, PacketType, list[bytes], bytes]], cuts: list[int]
) -> None:
    packets = []
    for magic, ptype, args, last in specs:
        n = len(PACKETS[ptype].args)
        packets.append(Packet(magic, ptype, (*args[: n - 1], last) if n else ()))
    stream = b"".join(encode(p) for p in packets)
    decoder = Decoder()
    out: list[Packet | AdminLine] = []
    pos = 0
    for cut in [*cuts, len(stream)]:
        decoder.feed(stream[pos : pos + cut])
        pos += cut
        while (event := decoder.next_event()) is not None:
            out.append(event)
        if pos >= len(stream):
            break
    assert out == packets


@given(st.binary(max_size=200))
def test_garbage_never_crashes(data: bytes) -> None:
    decoder = Decoder(max_packet_size=1000, max_line_size=100)
    decoder.feed(data)
    try:
        while decoder.next_event() is not None:
            pass
    except ProtocolError:
        pass


@pytest.mark.parametrize("chunk", [1000, 65536, 10**7])
def test_large_packets_in_pieces(chunk: int) -> None:
    big = bytes(range(256)) * 1024 + b"\0\0tail"  # 256 KiB with NULs
    packets = [
        Packet(REQ, PacketType.SUBMIT_JOB, (b"fn", b"uniq", big)),
        Packet(RES, PacketType.WORK_COMPLETE, (b"H:x:1", big)),
        Packet(REQ, PacketType.ECHO_REQ, (big,)),
        Packet(REQ, PacketType.SUBMIT_JOB, (b"f" * 5000, b"u" * 3000, big)),  # across pieces
    ]
    stream = b"".join(encode(p) for p in packets) + pack(
        REQ, PacketType.SUBMIT_JOB, (b"x" * 70000,)
    )
    decoder = Decoder()
    events = []
    for i in range(0, len(stream), chunk):
        decoder.feed(stream[i : i + chunk])
        while (event := decoder.next_event()) is not None:
            events.append(event)
    assert events[:4] == packets
    assert events[4] == Packet(REQ, PacketType.SUBMIT_JOB, (b"x" * 70000,))  # too few args
    assert all(type(a) is bytes for e in events for a in e.args)  # type: ignore[union-attr]


def read_in(decoder: Decoder, stream: bytes, reads: list[int]) -> list[Packet | AdminLine]:
    """Events of ``stream`` read into the decoder's buffer in steps of ``reads`` (cycled)."""
    events = []
    pos, i = 0, 0
    while pos < len(stream):
        space = decoder.get_buffer()
        step = min(len(space), reads[i % len(reads)], len(stream) - pos)
        space[:step] = stream[pos : pos + step]
        decoder.buffer_updated(step)
        pos, i = pos + step, i + 1
        while (event := decoder.next_event()) is not None:
            events.append(event)
    return events


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([PacketType.ECHO_REQ, PacketType.WORK_COMPLETE, PacketType.SUBMIT_JOB]),
    st.lists(st.sampled_from([0, 1, 7, 5000]), max_size=4),
    st.integers(0, 4),
    st.integers(LARGE, 300_000),
    st.lists(st.integers(1, 200_000), min_size=1, max_size=20),
)
def test_large_malformed_packets_split_as_small_ones(
    ptype: PacketType, sizes: list[int], at: int, big: int, reads: list[int]
) -> None:
    # NUL-separated fields, one of them large: too few, just enough or more NULs
    # than the type has arguments, empty fields, NULs anywhere in the pieces.
    fields = [bytes([65 + i]) * n for i, n in enumerate(sizes)]
    fields.insert(min(at, len(fields)), bytes(range(1, 256)) * (big // 255))
    payload = b"\0".join(fields)
    argc = len(PACKETS[ptype].args)
    packet = Packet(REQ, ptype, tuple(payload.split(b"\0", argc - 1)))
    stream = HEADER.pack(REQ, ptype, len(payload)) + payload + pack(REQ, PacketType.NOOP, ())
    expected = [packet, Packet(REQ, PacketType.NOOP, ())]
    assert decode_all(stream) == expected  # in one buffer
    events = read_in(Decoder(), stream, reads)  # in pieces, the last argument maybe in place
    assert events == expected
    assert all(type(a) is bytes for a in events[0].args)  # type: ignore[union-attr]


BIG = b"x" * (2 * LARGE)


@pytest.mark.parametrize(
    ("payload", "args"),
    [
        (b"fn\0\0" + BIG, (b"fn", b"", BIG)),
        (b"fn\0" + BIG + b"\0", (b"fn", BIG, b"")),  # an empty last argument
        (b"fn\0" + BIG, (b"fn", BIG)),  # a missing NUL
    ],
)
@pytest.mark.parametrize("first", range(6))
def test_nuls_at_the_edges_of_pieces(payload: bytes, args: tuple[bytes, ...], first: int) -> None:
    # The first piece of a large body is what came with the header: it ends just
    # before, on or after each NUL of the first arguments; the last byte comes alone.
    stream = HEADER.pack(REQ, PacketType.SUBMIT_JOB, len(payload)) + payload
    decoder = Decoder()
    decoder.feed(stream[: 12 + first])
    assert decoder.next_event() is None
    decoder.feed(stream[12 + first : -1])
    assert decoder.next_event() is None
    decoder.feed(stream[-1:])
    assert decoder.next_event() == Packet(REQ, PacketType.SUBMIT_JOB, args)


def test_kept_pieces_carry_nothing_over_to_the_next_large_packet() -> None:
    drop_pieces()
    first = Decoder()
    stream = pack(REQ, PacketType.ECHO_REQ, (b"a" * (3 << 20),))
    first.feed(stream[:1000])
    assert first.next_event() is None  # the header is in: the body comes in pieces
    first.feed(stream[1000:])
    assert first.next_event() == Packet(REQ, PacketType.ECHO_REQ, (b"a" * (3 << 20),))
    # Another connection's shorter packet lands in the kept pieces, the last partly filled.
    second = Decoder()
    data = bytes(range(256)) * 4099 + b"end"
    stream = pack(RES, PacketType.WORK_COMPLETE, (b"H:x:2", data))
    events = []
    for i in range(0, len(stream), 100_000):
        second.feed(stream[i : i + 100_000])
        events.append(second.next_event())
    assert events[-1] == Packet(RES, PacketType.WORK_COMPLETE, (b"H:x:2", data))
    kept = drop_pieces()
    assert 0 < kept <= POOL_SIZE
    assert drop_pieces() == 0


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([PacketType.ECHO_REQ, PacketType.WORK_COMPLETE, PacketType.SUBMIT_JOB]),
    st.integers(0, 200_000),
    st.integers(LARGE, 600_000),
    st.lists(st.integers(1, 300_000), min_size=1, max_size=30),
)
def test_large_payload_read_in_place_arrives_whole(
    ptype: PacketType, head: int, size: int, reads: list[int]
) -> None:
    # The first arguments may be longer than half the body (then it stays in pieces).
    n = len(PACKETS[ptype].args)
    heads = [bytes([65 + i]) * (head // n) for i in range(n - 1)]
    data = bytes(range(256)) * (size // 256) + b"\0" * (size % 256)
    packet = Packet(REQ, ptype, (*heads, data))
    stream = pack(REQ, ptype, packet.args) + pack(REQ, PacketType.NOOP, ())
    events = read_in(Decoder(), stream, reads)
    assert events == [packet, Packet(REQ, PacketType.NOOP, ())]
    assert all(type(a) is bytes for a in events[0].args)  # type: ignore[union-attr]
    assert hash(events[0].args[-1]) == hash(data)  # type: ignore[union-attr]


def test_buffer_follows_bytes_received_not_bytes_announced() -> None:
    decoder = Decoder()
    assert decoder.allocated == 0  # nothing before the first read
    decoder.feed(HEADER.pack(REQ, PacketType.ECHO_REQ, 60 << 20) + b"x" * 1000)
    assert decoder.next_event() is None
    assert decoder.allocated <= 64 << 10
    payload = b"y" * (60 << 20)
    received = 1000
    while received < len(payload):
        step = min(1 << 20, len(payload) - received)
        space = decoder.get_buffer()
        assert decoder.allocated <= 2 * received + (64 << 10)  # grows with what came
        assert len(space) <= len(payload) - received  # never past the body
        if 2 * received < len(payload):
            assert len(space) <= CHUNK_SIZE  # a piece: a bounded step
        step = min(step, len(space))
        space[:step] = payload[received : received + step]
        decoder.buffer_updated(step)
        received += step
    assert decoder.next_event() == Packet(
        REQ, PacketType.ECHO_REQ, (b"x" * 1000 + b"y" * (received - 1000),)
    )


def test_a_body_already_in_the_kernel_is_allocated_at_once_and_read_in_place() -> None:
    # The sender has written the whole packet and it waits in the receiving socket
    # (what readable.waiting reports): the payload is allocated whole after the
    # header, so the rest of the body takes one read and no piece is copied.
    size = 3 << 20
    data = bytes(range(256)) * (size // 256)
    stream = pack(REQ, PacketType.SUBMIT_JOB, (b"resize", b"u1", data))
    pos = 0
    decoder = Decoder(waiting=lambda: len(stream) - pos)
    reads = []
    while (event := decoder.next_event()) is None:
        space = decoder.get_buffer()
        assert decoder.allocated <= 2 * len(stream)
        step = min(len(space), len(stream) - pos)
        space[:step] = stream[pos : pos + step]
        decoder.buffer_updated(step)
        pos += step
        reads.append(step)
    assert event == Packet(REQ, PacketType.SUBMIT_JOB, (b"resize", b"u1", data))
    assert len(reads) == 2


def test_a_stream_that_carries_large_packets_reads_each_in_one_step() -> None:
    decoder = Decoder()
    assert len(decoder.get_buffer()) == RECV_SIZE
    decoder.feed(pack(REQ, PacketType.ECHO_REQ, (b"small",)))
    assert decoder.next_event() == Packet(REQ, PacketType.ECHO_REQ, (b"small",))
    assert len(decoder.get_buffer()) == RECV_SIZE  # small packets keep small buffers
    data = bytes(range(256)) * 400  # 100 KiB: large, and fits one larger read
    stream = pack(REQ, PacketType.WORK_COMPLETE, (b"H:x:1", data)) * 2
    decoder.feed(stream[: len(stream) // 2])
    assert decoder.next_event() == Packet(REQ, PacketType.WORK_COMPLETE, (b"H:x:1", data))
    space = decoder.get_buffer()
    assert len(space) == LARGE_RECV_SIZE
    space[: len(stream) // 2] = stream[len(stream) // 2 :]  # the next one in one read
    decoder.buffer_updated(len(stream) // 2)
    assert decoder.next_event() == Packet(REQ, PacketType.WORK_COMPLETE, (b"H:x:1", data))


def test_bytes_still_to_come_do_not_count_as_waiting() -> None:
    # A header announcing 60 MiB with nothing behind it in the kernel: memory
    # still follows what has arrived.
    decoder = Decoder(waiting=lambda: 0)
    decoder.feed(HEADER.pack(REQ, PacketType.ECHO_REQ, 60 << 20) + b"x" * 1000)
    assert decoder.next_event() is None
    decoder.get_buffer()
    assert decoder.allocated <= 64 << 10


def test_a_body_no_larger_than_one_delivered_is_allocated_at_its_header() -> None:
    decoder = Decoder(waiting=lambda: 0)  # nothing more waits in the kernel
    data = bytes(range(256)) * (3 << 12)  # 3 MiB
    stream = pack(REQ, PacketType.ECHO_REQ, (data,))
    decoder.feed(stream[:1000])
    assert decoder.next_event() is None
    assert decoder.allocated <= 64 << 10  # the first time, memory follows what arrives
    decoder.feed(stream[1000:])
    assert decoder.next_event() == Packet(REQ, PacketType.ECHO_REQ, (data,))
    decoder.feed(stream[:1000])
    assert decoder.next_event() is None
    assert decoder.allocated >= len(data)  # the payload, at once: this stream delivers
    assert decoder.buffered == len(data)  # and limits on input count all of it
    decoder.feed(stream[1000:])
    assert decoder.next_event() == Packet(REQ, PacketType.ECHO_REQ, (data,))
    # A larger one than it has delivered still grows with what arrives.
    decoder.feed(HEADER.pack(REQ, PacketType.ECHO_REQ, 60 << 20) + b"x" * 1000)
    assert decoder.next_event() is None
    assert decoder.allocated <= KEEP_SIZE + (64 << 10)
    assert decoder.buffered == 1000


def test_waiting_reports_the_bytes_a_socket_holds() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sender = socket.create_connection(listener.getsockname())
        receiver, _ = listener.accept()
        with sender, receiver:
            ready = waiting(receiver.fileno())
            assert ready is not None and ready() == 0
            sender.sendall(b"x" * 1000)
            deadline = time.monotonic() + 5
            while ready() < 1000 and time.monotonic() < deadline:
                time.sleep(0.001)
            assert ready() == 1000
            receiver.recv(400)
            assert ready() == 600
        assert ready() == 0  # closed: nothing to read, and no error


def test_release_gives_the_buffer_back_only_when_nothing_is_pending() -> None:
    decoder = Decoder()
    decoder.feed(pack(REQ, PacketType.ECHO_REQ, (b"hi",)) + b"\0RE")
    assert decoder.next_event() == Packet(REQ, PacketType.ECHO_REQ, (b"hi",))
    assert not decoder.release()  # three bytes of the next header are pending
    decoder.feed(b"Q" + HEADER.pack(REQ, PacketType.NOOP, 0)[4:])
    assert decoder.next_event() == Packet(REQ, PacketType.NOOP, ())
    assert decoder.release() and decoder.allocated == 0
    decoder.feed(pack(REQ, PacketType.ECHO_REQ, (b"again",)))
    assert decoder.next_event() == Packet(REQ, PacketType.ECHO_REQ, (b"again",))
    decoder.feed(b"partial")
    assert decoder.release(force=True) and decoder.buffered == 0
