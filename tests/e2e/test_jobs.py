"""Jobs on the wire where the sockets matter, against geartrain and gearmand alike (the
protocol's scenarios, exact packets for each peer, are in test_scenarios.py)."""

from __future__ import annotations

import time

from geartrain.protocol import REQ, pack
from serverproc import ServerProc
from wire import T, Wire


def test_large_payloads_back_to_back(server: ServerProc) -> None:
    """Megabyte packets sent together, so one read ends inside the next one's header."""
    payloads = [bytes([i]) * (1_000_000 + 7 * i) for i in range(1, 6)]
    with Wire(server.port) as c, Wire(server.port) as w:
        w.send(T.CAN_DO, b"big")
        w.sync()
        c.raw(b"".join(pack(REQ, T.SUBMIT_JOB_BG, (b"big", b"", p)) for p in payloads))
        handles = [c.expect(T.JOB_CREATED, timeout=10)[0] for _ in payloads]
        got = []
        for _ in payloads:
            job = w.grab()
            assert job is not None
            got.append(job[3])
            w.send(T.WORK_COMPLETE, job[0], job[3])
        assert got == payloads and len(set(handles)) == 5
        c.send(T.ECHO_REQ, b"x" * 3_000_000)
        assert c.expect(T.ECHO_RES, timeout=10) == (b"x" * 3_000_000,)


def test_a_large_packet_sent_slowly_then_small_ones(server: ServerProc) -> None:
    """A megabyte body that trickles in is received whole, and the small packets after
    it are answered at once (the server waits for large bodies a read's worth at a time)."""
    payload = bytes(range(256)) * 4096
    packet = pack(REQ, T.ECHO_REQ, (payload,))
    with Wire(server.port) as c:
        for part in (packet[:100], packet[100:5000], packet[5000:600_000], packet[600_000:-1]):
            c.raw(part)
            time.sleep(0.2)
        c.raw(packet[-1:] + pack(REQ, T.ECHO_REQ, (b"next",)))
        assert c.expect(T.ECHO_RES, timeout=10) == (payload,)
        assert c.expect(T.ECHO_RES, timeout=10) == (b"next",)
        c.send(T.ECHO_REQ, b"and again")
        assert c.expect(T.ECHO_RES, timeout=10) == (b"and again",)
