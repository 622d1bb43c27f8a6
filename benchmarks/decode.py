"""Time the decoder alone (a measurement, not a test): no sockets, no server.

Small packets: a stream of SUBMIT_JOB and WORK_COMPLETE packets with 100-byte
payloads, read into the decoder's buffer 64 KiB at a time as the server reads.
Large packets: SUBMIT_JOBs of 64 KiB (the smallest cut without an extra copy)
and of 1 MiB, all in the buffer already (the time of cutting them alone), and
1 MiB read 64 KiB at a time (received in pieces, the payload in place).  Prints
the best of ``--repeat`` runs of each, so a busy machine disturbs the figures less.

    python benchmarks/decode.py [--small 100000] [--large 20] [--repeat 7]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from geartrain.protocol import LARGE, REQ, RES, Decoder, PacketType, pack

READ = 64 << 10


def small_stream(count: int) -> bytes:
    submit = pack(REQ, PacketType.SUBMIT_JOB, (b"reverse", b"", b"x" * 100))
    complete = pack(RES, PacketType.WORK_COMPLETE, (b"H:host:12345", b"y" * 100))
    return (submit + complete) * (count // 2)


def large_stream(count: int, size: int) -> bytes:
    return pack(REQ, PacketType.SUBMIT_JOB, (b"reverse", b"", b"z" * size)) * count


def decode_in_reads(stream: bytes) -> tuple[int, float]:
    """Decode ``stream`` read into the decoder's own buffer at most READ bytes at a time."""
    start = time.perf_counter()
    decoder = Decoder()
    view = memoryview(stream)
    pos = events = 0
    while pos < len(view):
        space = decoder.get_buffer()
        step = min(len(space), READ, len(view) - pos)
        space[:step] = view[pos : pos + step]
        decoder.buffer_updated(step)
        pos += step
        while decoder.next_event() is not None:
            events += 1
    return events, time.perf_counter() - start


def decode_whole(stream: bytes) -> tuple[int, float]:
    """Decode ``stream`` already in the buffer: the time of cutting packets alone."""
    decoder = Decoder()
    decoder.feed(stream)
    start = time.perf_counter()
    events = 0
    while decoder.next_event() is not None:
        events += 1
    return events, time.perf_counter() - start


def best(
    run: Callable[[bytes], tuple[int, float]], stream: bytes, expected: int, repeat: int
) -> float:
    times = []
    for _ in range(repeat):
        events, seconds = run(stream)
        assert events == expected, (events, expected)
        times.append(seconds)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000, help="small packets")
    parser.add_argument("--large", type=int, default=20, help="1 MiB packets")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    small, large = small_stream(args.small), large_stream(args.large, 1 << 20)
    smallest_large = large_stream(args.small // 50, LARGE)  # the most calls per byte
    rows = [
        ("small, 64 KiB reads", decode_in_reads, small, args.small),
        ("64 KiB, in the buffer", decode_whole, smallest_large, args.small // 50),
        ("1 MiB, in the buffer", decode_whole, large, args.large),
        ("1 MiB, 64 KiB reads", decode_in_reads, large, args.large),
    ]
    for name, run, stream, count in rows:
        seconds = best(run, stream, count, args.repeat)
        print(f"{name:22} {seconds * 1e3:9.2f} ms  {seconds / count * 1e6:9.3f} µs/packet")


if __name__ == "__main__":
    main()
