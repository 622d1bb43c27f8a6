"""Resource figures, geartrain beside gearmand in one run (loopback only, bounded in time).

    python benchmarks/resources.py [--idle 10000] [--attack 2000] [--seconds 5] [--json FILE]
                                   [--only flood,fuzz]

- idle: RSS per idle connection, for connections that never sent a byte and for
  connections that sent one ECHO and then went quiet (measured after the server has
  been idle a few seconds);
- announce: RSS growth while connections each announce a 1 MiB packet and send 1 KiB,
  and a new connection's round trip meanwhile;
- flood / fuzz: a healthy client's ECHO round trips (p50, p99, worst) while other
  connections pipeline requests as fast as they can, or send random and
  half-valid packets; the worst round trip bounds the server's longest stall.

The script raises its own open-file limit and starts both servers with
``-f`` large enough for the idle test.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import socket
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import servers

REQ = b"\0REQ"
ECHO_REQ, ECHO_RES, GRAB_JOB, CAN_DO, SUBMIT_JOB_BG = 16, 17, 9, 1, 18


def packet(ptype: int, *args: bytes) -> bytes:
    payload = b"\0".join(args)
    return REQ + struct.pack(">II", ptype, len(payload)) + payload


def raise_fd_limit(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def round_trip(sock: socket.socket) -> float:
    start = time.perf_counter()
    sock.sendall(packet(ECHO_REQ, b"ping"))
    got = b""
    while len(got) < 16:
        chunk = sock.recv(64)
        if not chunk:
            raise ConnectionError("closed")
        got += chunk
    return time.perf_counter() - start


def settle(server: servers.Server, seconds: float = 3.5) -> int:
    """RSS after the server has been idle (geartrain gives memory back after 2 s)."""
    time.sleep(seconds)
    return server.rss_bytes()


def idle(server: servers.Server, count: int) -> dict[str, float]:
    base = settle(server, 1.0)
    socks = [connect(server.port) for _ in range(count)]
    silent = settle(server) - base
    for sock in socks:
        sock.sendall(packet(ECHO_REQ, b"hello"))
    for sock in socks:
        sock.recv(64)
    spoke = settle(server) - base
    for sock in socks:
        sock.close()
    return {"silent_bytes_per_conn": silent / count, "spoke_bytes_per_conn": spoke / count}


def announce(server: servers.Server, count: int) -> dict[str, float]:
    probe = connect(server.port)
    round_trip(probe)
    base = server.rss_bytes()
    header = REQ + struct.pack(">II", ECHO_REQ, 1 << 20)
    socks = []
    for _ in range(count):
        sock = connect(server.port)
        sock.sendall(header + b"x" * 1024)
        socks.append(sock)
    rtt = round_trip(probe)
    grown = server.rss_bytes() - base
    for sock in socks:
        sock.close()
    probe.close()
    return {"rss_growth_bytes": grown, "new_round_trip_ms": rtt * 1000}


def _attacker(port: int, mode: str, seed: int, stop_at: float) -> None:
    rng = random.Random(seed)
    try:
        sock = connect(port)
        if mode == "flood":
            sock.sendall(packet(CAN_DO, b"flood"))
            burst = (packet(ECHO_REQ, b"x" * 64) + packet(GRAB_JOB)) * 500
            sock.setblocking(False)
            while time.monotonic() < stop_at:
                try:
                    sock.send(burst)
                    sock.recv(1 << 20)
                except BlockingIOError:
                    time.sleep(0.001)
            return
        while time.monotonic() < stop_at:
            kind = rng.random()
            if kind < 0.4:
                data = rng.randbytes(rng.randint(1, 2048))
            elif kind < 0.8:
                args = [rng.randbytes(rng.randint(0, 64)) for _ in range(rng.randint(0, 5))]
                data = packet(rng.randint(0, 45), *args)
            else:
                size = rng.choice([0, 1, 1 << 16, 1 << 24, 2**32 - 1])
                data = REQ + struct.pack(">II", rng.randint(1, 42), size) + rng.randbytes(64)
            try:
                sock.sendall(data)
            except OSError:
                sock.close()
                sock = connect(port)
    except OSError:
        pass


def under_abuse(
    server: servers.Server, mode: str, attackers: int, seconds: float
) -> dict[str, Any]:
    stop_at = time.monotonic() + seconds
    procs = [
        multiprocessing.Process(target=_attacker, args=(server.port, mode, i, stop_at))
        for i in range(attackers)
    ]
    for proc in procs:
        proc.start()
    time.sleep(0.3)
    samples: list[float] = []
    errors = 0
    probe = connect(server.port)
    while time.monotonic() < stop_at:
        try:
            samples.append(round_trip(probe))
        except OSError:
            errors += 1
            if server.proc.poll() is not None:
                break
            probe = connect(server.port)
        time.sleep(0.005)
    for proc in procs:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    alive = server.proc.poll() is None
    if not samples:
        return {"server_alive": alive, "errors": errors}
    samples.sort()
    return {
        "server_alive": alive,
        "errors": errors,
        "round_trips": len(samples),
        "p50_ms": statistics.median(samples) * 1000,
        "p99_ms": samples[int(len(samples) * 0.99) - 1] * 1000,
        "worst_ms": samples[-1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections")
    parser.add_argument("--attack", type=int, default=2000, help="announcing connections")
    parser.add_argument("--attackers", type=int, default=4, help="flood/fuzz processes")
    parser.add_argument("--seconds", type=float, default=5.0, help="per flood/fuzz run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--only", default="idle,announce,flood,fuzz", help="comma-separated tests to run"
    )
    args = parser.parse_args()
    fds = max(args.idle, args.attack) + 1000
    raise_fd_limit(fds + 1000)
    tests = {
        "idle": lambda s: idle(s, args.idle),
        "announce": lambda s: announce(s, args.attack),
        "flood": lambda s: under_abuse(s, "flood", args.attackers, args.seconds),
        "fuzz": lambda s: under_abuse(s, "fuzz", args.attackers, args.seconds),
    }
    chosen = [(name, tests[name]) for name in args.only.split(",")]
    results: dict[str, dict[str, Any]] = {}
    for kind in ("geartrain", "gearmand"):
        figures: dict[str, Any] = {}
        for name, run in chosen:
            server = servers.start(kind, ["-q", "builtin", "-f", str(fds)])
            try:
                figures[name] = run(server)
            except OSError as error:
                figures[name] = {"error": str(error), "server_alive": server.proc.poll() is None}
            finally:
                server.stop()
            print(kind, name, json.dumps(figures[name], default=round), flush=True)
        results[kind] = figures
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
