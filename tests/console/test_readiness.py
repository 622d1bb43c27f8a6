"""/readyz says "not ready" with progress while a large stored queue loads, then "ready"."""

from __future__ import annotations

import http.client
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from geartrain.protocol import PacketType
from serverproc import ServerProc, free_port
from store.dbservers import PrivateRedis
from wire import Wire, admin_command

JOBS = 200_000


def probe(port: int) -> tuple[int, str] | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/readyz")
        reply = conn.getresponse()
        return reply.status, reply.read().decode()
    except OSError:
        return None
    finally:
        conn.close()


@pytest.mark.slow
def test_not_ready_while_the_queue_loads(
    start_server: Callable[..., ServerProc], tmp_path: Path
) -> None:
    db = tmp_path / "queue.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE gearman_queue (id INTEGER PRIMARY KEY, unique_key TEXT,"
            " function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER)"
        )
        conn.executemany(
            "INSERT INTO gearman_queue VALUES (?, ?, 'f', 1, X'00', 0)",
            ((i, f"u{i}") for i in range(1, JOBS + 1)),
        )
    port = free_port()
    server = start_server(
        "geartrain",
        ["-q", "libsqlite3", "--libsqlite3-db", str(db), "--console-port", str(port)],
        ready=False,
    )
    answers: list[tuple[int, str]] = []
    deadline = time.monotonic() + 120
    while not answers or answers[-1][0] != 200:
        assert time.monotonic() < deadline, answers[-3:]
        answer = probe(port)
        if answer is not None:
            answers.append(answer)
        time.sleep(0.02)
    assert answers[-1] == (200, "ready\n")
    waiting = [text for status, text in answers if status == 503]
    assert waiting, "the console answered only once the queue was loaded"
    assert all(text.startswith("not ready: ") for text in waiting)
    assert admin_command(server.port, "version").startswith(b"OK")  # the job port is up


def test_ready_again_once_the_store_is_back_with_no_traffic(
    start_server: Callable[..., ServerProc],
) -> None:
    """A load balancer stops sending work to a server that is not ready: readiness
    must come back when the store does, not wait for the next submission."""
    store = PrivateRedis()
    store.start()
    try:
        port = free_port()
        server = start_server(
            "geartrain",
            ["-q", "redis", "--redis-server", "127.0.0.1", "--redis-port", str(store.port)]
            + ["--console-port", str(port)],
        )
        assert probe(port) == (200, f"ready (store primary 127.0.0.1:{store.port})\n")
        store.kill()
        with Wire(server.port) as client:
            client.send(PacketType.SUBMIT_JOB_BG, b"f", b"u1", b"x")
            answer = client.next()
            assert answer is not None and answer.type == PacketType.ERROR, answer
            assert answer.args[0] == b"QUEUE_ERROR"
        answer = probe(port)
        assert answer is not None and answer[0] == 503, answer
        store.start()  # on the same port; nothing is submitted from now on
        deadline = time.monotonic() + 30
        while (answer := probe(port)) is None or answer[0] != 200:
            assert time.monotonic() < deadline, answer
            time.sleep(0.1)
    finally:
        store.cleanup()
