"""The console's API at a million queued jobs, and what an open console costs.

    python benchmarks/console_scale.py [--jobs 1000000] [--failed 3000] [--runs 5] [--watch 30]

Fills a geartrain server (memory queue, console on) over the wire with
pipelined raw SUBMIT_JOB_*_BG packets, across functions and priorities, plus
epoch jobs an hour ahead and background jobs a worker fails for good (the
failed set); then times each API call (median and max of ``--runs``), and
measures the server's CPU over ``--watch`` seconds while a poll loop does what
an open console tab does: every 2 s, /api/status, /api/functions and the first
page of queued jobs, with /api/events open.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import socket
import statistics
import struct
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import servers

from geartrain import Worker
from geartrain.protocol import REQ, PacketType, pack

T = PacketType
FUNCTIONS = 10
BATCH = 20_000
SUBMITS = (T.SUBMIT_JOB_HIGH_BG, T.SUBMIT_JOB_BG, T.SUBMIT_JOB_LOW_BG)
HEADER = struct.Struct(">4sII")


def _answers(sock: socket.socket, count: int, buffer: bytearray) -> None:
    """Read ``count`` answer packets (JOB_CREATED), whatever their size."""
    while count:
        while len(buffer) >= 12:
            size = HEADER.unpack_from(buffer)[2]
            if len(buffer) < 12 + size:
                break
            del buffer[: 12 + size]
            count -= 1
            if not count:
                return
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk


def fill(port: int, jobs: int) -> float:
    """Submit ``jobs`` background jobs, pipelined a batch at a time; seconds taken."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        buffer = bytearray()
        for first in range(0, jobs, BATCH):
            n = min(BATCH, jobs - first)
            packets = []
            for i in range(first, first + n):
                function = b"fn%d" % (i % FUNCTIONS)
                # Mostly normal priority, some high and low.
                submit = SUBMITS[1] if i % 10 < 8 else SUBMITS[0 if i % 10 == 8 else 2]
                data = b"order %d for customer %d" % (i, i % 977)
                packets.append(pack(REQ, submit, (function, b"u%d" % i, data)))
            sock.sendall(b"".join(packets))
            _answers(sock, n, buffer)
        ahead = str(int(time.time()) + 3600).encode()
        epoch = [
            pack(REQ, T.SUBMIT_JOB_EPOCH, (b"later", b"e%d" % i, ahead, b"x")) for i in range(1000)
        ]
        sock.sendall(b"".join(epoch))
        _answers(sock, len(epoch), buffer)
    return time.perf_counter() - started


async def fail(address: str, port: int, count: int, console: int) -> None:
    """``count`` background jobs that a worker fails for good (the failed set)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"".join(
                pack(REQ, T.SUBMIT_JOB_BG, (b"doomed", b"d%d" % i, b"bad input %d" % i))
                for i in range(count)
            )
        )
        _answers(sock, count, bytearray())
    worker = Worker([address])
    worker.register("doomed", lambda job: job.fail())
    await worker.start()
    try:
        while get(console, "/api/status")["counts"]["dead"] < count:
            await asyncio.sleep(0.2)
    finally:
        worker.stop(graceful=False)
        await worker.wait()


def get(port: int, path: str) -> dict:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        body = reply.read()
        if reply.status != 200:
            raise RuntimeError(f"{path}: {reply.status} {body[:200]!r}")
        return json.loads(body) if body[:1] in (b"{", b"[") else {}
    finally:
        conn.close()


def timed(port: int, path: str, runs: int) -> tuple[float, float]:
    """Median and max milliseconds of ``runs`` calls, each on a new connection."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        get(port, path)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def open_tab(port: int, stop: threading.Event) -> None:
    """An open console: the event stream, and the page's polls every 2 s."""
    events = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    events.request("GET", "/api/events")
    stream = events.getresponse()

    def read() -> None:
        try:
            while stream.fp.readline():
                pass
        except (OSError, ValueError, AttributeError):  # closed under it at the end
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    api = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.wait(2.0):
        for path in ("/api/status", "/api/functions", "/api/jobs?state=queued&limit=50"):
            api.request("GET", path)
            api.getresponse().read()
    api.close()
    events.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--failed", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--watch", type=float, default=30.0, help="seconds of the open tab")
    args = parser.parse_args()

    console = servers.free_port()
    server = servers.start("geartrain", ["-q", "builtin", "--console-port", str(console)])
    try:
        address = f"127.0.0.1:{server.port}"
        seconds = fill(server.port, args.jobs)
        print(f"filled {args.jobs:,} jobs in {seconds:.1f} s ({args.jobs / seconds:,.0f}/s)")
        asyncio.run(fail(address, server.port, args.failed, console))
        print(f"{args.failed:,} failed jobs; server RSS {server.rss_bytes() / 2**20:,.0f} MiB")
        handle = get(console, "/api/jobs?limit=1")["items"][0]["handle"]
        failed = get(console, "/api/jobs?state=failed&limit=1")["items"][0]["handle"]
        deep = args.jobs - 50
        calls = [
            "/api/status",
            "/api/functions",
            "/api/workers",
            "/api/history",
            "/api/jobs?state=queued",
            f"/api/jobs?state=queued&offset={deep}",
            "/api/jobs?state=queued&sort=-age",
            "/api/jobs?state=queued&function=fn3&priority=low&offset=9000",
            f"/api/jobs?state=queued&function=fn3&offset={args.jobs // FUNCTIONS - 50}",
            "/api/jobs?state=queued&unique=u777777",
            "/api/jobs?state=queued&q=customer%20976",
            "/api/jobs?state=scheduled",
            "/api/jobs?state=running",
            "/api/jobs?state=failed",
            "/api/jobs?state=failed&offset=2950&q=bad",
            f"/api/jobs/{handle}",
            f"/api/jobs/{failed}",
            "/api/rates?function=doomed",
            "/api/schedules",
            "/api/audit",
            "/metrics",
        ]
        print(f"API calls at {args.jobs:,} queued jobs, ms (median / max of {args.runs}):")
        for path in calls:
            median, most = timed(console, path, args.runs)
            flag = "" if most < 200 else "   over 200 ms"
            print(f"  {median:7.1f} / {most:7.1f}  {path}{flag}")

        stop = threading.Event()
        tab = threading.Thread(target=open_tab, args=(console, stop))
        before = server.cpu_seconds()
        started = time.monotonic()
        tab.start()
        time.sleep(args.watch)
        stop.set()
        tab.join(30)
        used = server.cpu_seconds() - before
        elapsed = time.monotonic() - started
        print(
            f"open console tab for {elapsed:.0f} s: server CPU {used:.2f} s "
            f"= {100 * used / elapsed:.2f}% of a CPU (target under 2%)"
        )
        body = json.dumps({"action": "cancel", "filter": {"function": "fn9"}}).encode()
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", console, timeout=600)
        conn.request("POST", "/api/jobs/bulk", body, {"X-Geartrain-Console": "1"})
        touched = json.loads(conn.getresponse().read())["touched"]
        conn.close()
        seconds = time.perf_counter() - started
        print(f"bulk cancel of a function's {touched:,} jobs: {seconds:.2f} s")
        path = f"/api/jobs?state=queued&offset={args.jobs - touched - 50}"
        started = time.perf_counter()
        get(console, path)  # the first deep page after a cancel clears the cancelled entries
        first = (time.perf_counter() - started) * 1000
        median, most = timed(console, path, args.runs)
        print(f"  then {path}: first {first:.1f} ms, then {median:.1f} / {most:.1f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
