"""A real server with the operations listener, and small HTTP helpers."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from serverproc import ServerProc, free_port


@dataclass
class Console:
    server: ServerProc
    port: int

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            reply = conn.getresponse()
            return reply.status, dict(reply.getheaders()), reply.read()
        finally:
            conn.close()

    def get(self, path: str) -> Any:
        status, _, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def act(self, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        sent = {"X-Geartrain-Console": "1", **headers}
        data = json.dumps(body) if body is not None else None
        status, _, reply = self.request("POST", path, data, sent)
        try:
            return status, json.loads(reply)
        except ValueError:
            return status, reply.decode()


def exchange(port: int, raw: bytes) -> bytes:
    """Send ``raw``; return all the server sends until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(raw)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except ConnectionResetError:  # the server closed with our excess input unread
            pass
        except TimeoutError:
            raise AssertionError(f"the connection was left open after {out!r}") from None
        return out


@pytest.fixture
def start_console(start_server: Callable[..., ServerProc]) -> Callable[..., Console]:
    def start(*args: str) -> Console:
        port = free_port()
        return Console(start_server("geartrain", ["--console-port", str(port), *args]), port)

    return start


@pytest.fixture
def console(start_console: Callable[..., Console]) -> Console:
    return start_console()


@pytest.fixture
def php_worker(console: Console, tmp_path: Path) -> Iterator[Path]:
    """php-gearman's worker (php/worker.php) of "resize" (runs until DIR/release
    exists), "flaky" and "noop"; yields the directory DIR that steers it."""
    proc = subprocess.Popen(
        [
            "php",
            str(Path(__file__).parent / "php" / "worker.php"),
            "127.0.0.1",
            str(console.server.port),
            tmp_path,
        ]
    )
    yield tmp_path
    (tmp_path / "release").touch()
    (tmp_path / "stop").touch()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def php_submit(console: Console, function: str, data: bytes) -> str:
    """A background job submitted by php-gearman (tests/php_peers/client.php); its handle."""
    client = Path(__file__).parents[1] / "php_peers" / "client.php"
    done = subprocess.run(
        ["php", str(client), "127.0.0.1", str(console.server.port), function, "background"],
        input=data,
        capture_output=True,
        check=True,
        timeout=30,
    )
    return done.stdout.decode()
