"""Group commit through a real `geartrain server` on SQLite: jobs that arrive
together share a transaction, so durable throughput is not one fsync per job.

The transaction count comes from the server's own ``/status.json``.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from geartrain.protocol import REQ, PacketType, pack
from serverproc import ServerProc, free_port
from wire import Wire

from .test_durability import drain, submit

T = PacketType


@pytest.fixture
def durable(start_server: Callable[..., ServerProc], tmp_path: Path) -> tuple[ServerProc, int]:
    """A server at the default level (crash)."""
    metrics = free_port()
    args = ["-q", "libsqlite3", f"--libsqlite3-db={tmp_path / 'q.sqlite3'}"]
    return start_server("geartrain", [*args, "--metrics-port", str(metrics)]), metrics


@pytest.fixture
def durable_power(
    start_server: Callable[..., ServerProc], tmp_path: Path
) -> tuple[ServerProc, int]:
    metrics = free_port()
    args = ["-q", "libsqlite3", f"--libsqlite3-db={tmp_path / 'q.sqlite3'}", "--durability=power"]
    return start_server("geartrain", [*args, "--metrics-port", str(metrics)]), metrics


def store_status(metrics_port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{metrics_port}/status.json"
    with urllib.request.urlopen(url, timeout=5) as reply:
        store: dict[str, Any] = json.load(reply)["store"]
        return store


def store_writes(metrics_port: int) -> int:
    return int(store_status(metrics_port)["writes"])


def test_the_default_level_is_shown(durable: tuple[ServerProc, int]) -> None:
    server, metrics = durable
    assert store_status(metrics)["durability"] == "crash"
    assert "durability crash: acknowledged jobs survive a crash of the server" in server.log()


def submit_one_at_a_time(port: int, count: int, created: list[bytes]) -> None:
    """A client in the style of PHP's doBackground loop: submit, wait for JOB_CREATED, repeat."""
    conn = Wire(port, timeout=10)
    try:
        for _ in range(count):
            reply = submit(conn, T.SUBMIT_JOB_BG, b"x")
            assert reply.type == T.JOB_CREATED, reply
            created.append(reply.args[0])
    finally:
        conn.close()


def test_pipelined_submissions_share_transactions(
    durable_power: tuple[ServerProc, int],
) -> None:
    """Where each job costs a transaction (at the crash level it is a record in
    the queue's log instead), a burst of submissions shares a few."""
    server, metrics = durable_power
    before = store_writes(metrics)
    conn = Wire(server.port, timeout=10)
    packets = [pack(REQ, T.SUBMIT_JOB_BG, [b"durable", b"", b"%d" % i]) for i in range(500)]
    conn.sock.sendall(b"".join(packets))
    replies = [conn.read() for _ in packets]
    conn.close()
    assert all(r.type == T.JOB_CREATED for r in replies)
    assert store_writes(metrics) - before <= 10
    assert len(drain(server.port)) == 500


def test_one_at_a_time_submitters_share_transactions(
    durable_power: tuple[ServerProc, int],
) -> None:
    """Two clients that each wait for JOB_CREATED before the next job would fall
    into lockstep, one job per transaction; at the power level, where each
    transaction costs an fsync, the writer waits for the one it has just
    acknowledged, so most transactions carry a job from each."""
    server, metrics = durable_power
    clients, per_client = 2, 200
    created: list[bytes] = []
    submit_one_at_a_time(server.port, 5, created)  # warm up
    before = store_writes(metrics)
    threads = [
        threading.Thread(target=submit_one_at_a_time, args=(server.port, per_client, created))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    jobs = clients * per_client
    assert len(created) == jobs + 5
    writes = store_writes(metrics) - before
    assert writes <= 0.7 * jobs, f"{writes} transactions for {jobs} jobs"
    assert len(drain(server.port)) == jobs + 5
