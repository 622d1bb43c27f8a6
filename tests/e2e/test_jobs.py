"""Jobs on the wire where the sockets matter, against geartrain and gearmand alike (the
protocol's scenarios, exact packets for each peer, are in test_scenarios.py)."""

from __future__ import annotations

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
