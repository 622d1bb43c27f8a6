"""gearmand's HTTP job gateway (-r http --http-port N) with curl and http.client, both servers."""

from __future__ import annotations

import asyncio
import http.client
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from geartrain import Worker
from gt_helpers import working
from serverproc import ServerProc, free_port
from wire import admin_command

from .conftest import exchange


@dataclass
class Gateway:
    server: ServerProc
    port: int


@pytest.fixture(
    params=["geartrain", pytest.param("gearmand", marks=pytest.mark.interop)],
)
def gateway(request: pytest.FixtureRequest, start_server: Callable[..., ServerProc]) -> Gateway:
    port = free_port()
    args = ["-r", "http", "--http-port", str(port)]
    if request.param == "gearmand":
        args = ["--protocol=http", f"--http-port={port}"]
    return Gateway(start_server(request.param, args), port)


def post(
    port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def reverse_worker(gateway: Gateway) -> Worker:
    """A worker for "reverse", and "chunks" (a WORK_DATA chunk, then the rest)."""
    worker = Worker([gateway.server.address], client_id="rev")
    worker.register("reverse", lambda job: job.data[::-1])

    def chunks(job):  # type: ignore[no-untyped-def]
        job.send_data(b"first,")
        return b"last"

    worker.register("chunks", chunks)
    return worker


async def test_foreground_job_with_http_client(gateway: Gateway) -> None:
    async with working(reverse_worker(gateway)):
        status, headers, body = await asyncio.to_thread(post, gateway.port, "/reverse", b"hello")
    assert status == 200 and body == b"olleh"
    assert headers["X-Gearman-Command"] == "WORK_COMPLETE"
    assert headers["X-Gearman-Job-Handle"].startswith("H:")
    assert headers["Content-Length"] == "5"


def test_background_and_priority_with_curl(gateway: Gateway) -> None:
    reply = subprocess.run(
        [
            "curl", "-si", "-X", "POST", "--data-binary", "payload",
            "-H", "X-Gearman-Background: true", "-H", "X-Gearman-Priority: high",
            "-H", "X-Gearman-Unique: u-1",
            f"http://127.0.0.1:{gateway.port}/later",
        ],
        capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"200" and body == b""
    assert b"X-Gearman-Command: JOB_CREATED" in head
    status = admin_command(gateway.server.port, "status")
    assert b"later\t1\t0\t0" in status


def test_empty_function_is_not_found(gateway: Gateway) -> None:
    assert post(gateway.port, "/", b"x")[0] == 404


def split_reply(reply: bytes) -> tuple[bytes, list[bytes], bytes]:
    """Status line, header lines, body."""
    head, _, body = reply.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    return status, lines, body


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_not_found_is_empty_and_closes_the_connection(
    gateway: Gateway, version: str, request: pytest.FixtureRequest
) -> None:
    # exchange() reads until the server closes; gearmand's test suite reads no body.
    reply = exchange(gateway.port, f"GET / HTTP/{version}\r\nHost: x\r\n\r\n".encode())
    status, lines, body = split_reply(reply)
    assert status.split(b" ")[1] == b"404" and body == b""
    assert b"Content-Length: 0" in lines
    if gateway.server.kind == "gearmand":
        request.applymarker(pytest.mark.gearmand_differs)
        assert status.startswith(b"HTTP/1.0 ")  # 1.1 answers 1.0 to all (2.0's #391 fix)
        return
    assert status.startswith(f"HTTP/{version} ".encode())
    assert (b"Connection: close" in lines) == (version == "1.1")


def test_a_head_with_bare_line_feeds_is_answered(gateway: Gateway) -> None:
    # gearmand reads it; aiohttp refuses it: either way an answer, then the close.
    reply = exchange(gateway.port, b"GET / HTTP/1.0\nX-Any: 1\n\n")
    assert reply.startswith((b"HTTP/1.0 400 ", b"HTTP/1.0 404 ")), reply


def test_unknown_method_closes_the_connection(
    gateway: Gateway, request: pytest.FixtureRequest
) -> None:
    reply = exchange(gateway.port, b"DELETE /reverse HTTP/1.1\r\nHost: x\r\n\r\n")
    if gateway.server.kind == "gearmand":
        request.applymarker(pytest.mark.gearmand_differs)
        assert reply == b""  # it closes without an answer
        return
    status, lines, body = split_reply(reply)
    assert status == b"HTTP/1.1 405 Method Not Allowed" and body == b""
    assert b"Connection: close" in lines and b"Allow: GET, HEAD, POST, PUT, TRACE" in lines


# What curl sends for gearmand's test suite (t/httpd), whose --header has literal quotes.
CURL_QUOTED_HEADER = (
    b"Host: 127.0.0.1\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
    b'"X-Gearman-Unique: curl_function_no_body_TEST"\r\n'
)


@pytest.mark.parametrize(
    ("raw", "result"),
    [
        (b"GET /reverse HTTP/1.1\r\n" + CURL_QUOTED_HEADER + b"\r\n", b""),
        (
            b"POST /reverse HTTP/1.1\r\n"
            + CURL_QUOTED_HEADER
            + b"Content-Length: 5\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nfubar",
            b"rabuf",
        ),
    ],
)
async def test_malformed_header_line_is_ignored(
    gateway: Gateway, raw: bytes, result: bytes
) -> None:
    async with working(reverse_worker(gateway)):
        reply = await asyncio.to_thread(exchange, gateway.port, raw)
    status, lines, body = split_reply(reply)
    assert status.split(b" ")[1] == b"200" and body == result
    assert b"X-Gearman-Command: WORK_COMPLETE" in lines


def test_refused_submission_closes_the_connection(
    start_server: Callable[..., ServerProc],
) -> None:
    port = free_port()
    start_server("geartrain", ["-r", "http", "--http-port", str(port), "--max-jobs", "1"])
    submit = b"POST /later HTTP/1.1\r\nHost: x\r\nX-Gearman-Background: true\r\n"
    first = exchange(port, submit + b"Content-Length: 1\r\n\r\n1")
    assert split_reply(first)[0] == b"HTTP/1.1 200 OK"
    status, lines, body = split_reply(exchange(port, submit + b"Content-Length: 1\r\n\r\n2"))
    assert status == b"HTTP/1.1 503 Service Unavailable" and b"Connection: close" in lines
    assert body


async def test_work_data_does_not_corrupt_the_reply(
    gateway: Gateway, request: pytest.FixtureRequest
) -> None:
    async with working(reverse_worker(gateway)):
        try:
            status, headers, body = await asyncio.to_thread(post, gateway.port, "/chunks", b"x")
        except (http.client.HTTPException, ConnectionError):
            status, headers, body = 0, {}, b""
    if gateway.server.kind == "gearmand":
        request.applymarker(pytest.mark.gearmand_differs)
        # gearmand writes the WORK_DATA chunk over the start of its own reply header.
        assert (status, body) != (200, b"first,last")
        return
    assert status == 200 and body == b"first,last"
    assert headers["X-Gearman-Command"] == "WORK_COMPLETE"
