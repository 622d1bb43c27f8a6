"""Large packets cut off by a peer that dies mid-body: no half job is queued, no half
result reaches a client, and the job runs again whole.  Each peer first sends a whole
packet as large, so the cut body is one a server allocates at its header (geartrain
does, once a stream has delivered as much); both servers."""

from __future__ import annotations

import socket
import struct

from geartrain.protocol import HEADER, REQ
from serverproc import ServerProc
from wire import T, Wire

SIZE = 2 << 20


def data(tag: int) -> bytes:
    return bytes([tag]) * SIZE


def cut_off(conn: Wire, ptype: T, *args: bytes) -> None:
    """Send the header and half the body of a packet, then die with a reset."""
    body = b"\0".join(args)
    conn.raw(HEADER.pack(REQ, ptype, len(body)) + body[: len(body) // 2])
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def grab_soon(worker: Wire) -> tuple[bytes, ...]:
    """GRAB_JOB, and if the job is not back yet, sleep until the server wakes us."""
    job = worker.grab(T.GRAB_JOB)
    if job is None:
        worker.send(T.PRE_SLEEP)
        worker.expect(T.NOOP, timeout=10)
        job = worker.grab(T.GRAB_JOB)
    assert job is not None
    return job


def test_a_client_cut_off_mid_submission_leaves_no_job(server: ServerProc) -> None:
    with Wire(server.port, timeout=30) as client:
        client.submit(b"cut", data(1), b"u1", T.SUBMIT_JOB_BG)
        cut_off(client, T.SUBMIT_JOB_BG, b"cut", b"u2", data(2))
    with Wire(server.port, timeout=30) as worker:
        worker.send(T.CAN_DO, b"cut")
        job = worker.grab(T.GRAB_JOB_UNIQ)
        assert job is not None
        assert job[1:] == (b"cut", b"u1", data(1))
        worker.send(T.WORK_COMPLETE, job[0], b"")
        assert worker.grab() is None  # the cut submission was never a job
        counts = [line.split(b"\t") for line in worker.admin("status").splitlines()]
        assert [c[1] for c in counts if c[0] == b"cut"] == [b"0"]


def test_a_worker_cut_off_mid_result_leaves_the_job_to_run_again_whole(
    server: ServerProc,
) -> None:
    with Wire(server.port, timeout=30) as client:
        with Wire(server.port, timeout=30) as first:
            first.send(T.CAN_DO, b"cut")
            whole = client.submit(b"cut", data(1))
            assert first.grab(T.GRAB_JOB) == (whole, b"cut", data(1))
            first.send(T.WORK_COMPLETE, whole, data(3))
            assert client.expect(T.WORK_COMPLETE) == (whole, data(3))

            handle = client.submit(b"cut", data(2))
            assert first.grab(T.GRAB_JOB) == (handle, b"cut", data(2))
            cut_off(first, T.WORK_COMPLETE, handle, data(4))
        with Wire(server.port, timeout=30) as second:
            second.send(T.CAN_DO, b"cut")
            assert grab_soon(second) == (handle, b"cut", data(2))
            second.send(T.WORK_COMPLETE, handle, data(5))
        # Nothing of the cut result came first.
        assert client.expect(T.WORK_COMPLETE) == (handle, data(5))
