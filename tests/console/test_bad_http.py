"""Malformed HTTP on the console port gets a 4xx and never disturbs the job port."""

from __future__ import annotations

import re

import pytest

from wire import admin_command

from .conftest import Console, exchange


def statuses(reply: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", reply)]


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        (
            "oversized header",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        ),
        ("bad request line", b"GARBAGE\r\n\r\n"),
        ("bad method token", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("unknown method", b"BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("bad content length", b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
        ("binary", b"\0REQ\0\0\0\x01\0\0\0\0"),
    ],
)
def test_bad_requests_get_4xx(console: Console, name: str, raw: bytes) -> None:
    codes = statuses(exchange(console.port, raw))
    assert codes and all(400 <= c < 500 for c in codes), (name, codes)
    assert admin_command(console.server.port, "version").startswith(b"OK ")
    assert console.request("GET", "/healthz")[0] == 200


def test_pipelined_requests_are_answered_in_order(console: Console) -> None:
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = exchange(console.port, one + one + last)
    assert statuses(reply) == [200, 200, 404]


def test_oversized_body_is_refused(console: Console) -> None:
    status, _, _ = console.request(
        "POST", "/api/jobs", b"x" * (2 << 20), {"X-Geartrain-Console": "1"}
    )
    assert status == 413
    assert admin_command(console.server.port, "version").startswith(b"OK ")
