"""The console as other hosts see it (docs/security.md, "What each listener exposes"):
a client in a network namespace of this machine reaches the server from a
non-loopback address."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from otherhost import OtherHost, other_host

from .conftest import Console

TOKEN = "s3cret-token"
PROBES = ("/healthz", "/readyz")
READS = ("/", "/console.js", "/api/status", "/api/jobs", "/api/events", "/status.json")


@pytest.fixture
def host() -> Iterator[OtherHost]:
    with other_host() as other:
        yield other


def status(host: OtherHost, console: Console, path: str, *curl_args: str) -> int | None:
    reply = host.http(console.port, path, "--max-time", "3", *curl_args)
    return None if reply is None else reply[0]


def test_console_listens_on_loopback_whatever_dash_l(
    host: OtherHost, start_console: Callable[..., Console]
) -> None:
    console = start_console("-L", "0.0.0.0")
    reach_job_port = (
        f"import socket; socket.create_connection(({host.here!r}, {console.server.port}), 5)"
    )
    assert host.run(["python3", "-c", reach_job_port]).returncode == 0
    assert host.http(console.port, "/healthz") is None  # refused: nothing listens there
    assert console.request("GET", "/api/status")[0] == 200


def test_reads_from_other_hosts_need_the_token(
    host: OtherHost, start_console: Callable[..., Console]
) -> None:
    console = start_console("--console-listen", host.here, "--http-token", TOKEN)
    for path in PROBES:
        assert status(host, console, path) == 200, path
    for path in (*READS, "/metrics"):
        reply = host.http(console.port, path, "--max-time", "3")
        assert reply is not None
        code, headers, body = reply
        assert code == 401, path
        assert headers["WWW-Authenticate"].startswith("Basic "), path
        assert b"console token" in body
    bearer = ("-H", f"Authorization: Bearer {TOKEN}")
    for path in (*READS, "/metrics"):
        # /api/events streams until curl's --max-time: its status is read from the head.
        code = status(host, console, path, *bearer)
        assert code == 200, path
    # A browser sends the token as the password of its Basic prompt.
    assert status(host, console, "/api/status", "-u", f"anyone:{TOKEN}") == 200
    assert status(host, console, "/api/status", "-u", "anyone:wrong") == 401
    assert status(host, console, "/api/status", "-H", "Authorization: Bearer wrong") == 401


def test_other_hosts_read_nothing_without_a_token(
    host: OtherHost, start_console: Callable[..., Console]
) -> None:
    console = start_console("--console-listen", "0.0.0.0")
    for path in PROBES:
        assert status(host, console, path) == 200, path
    for path in (*READS, "/metrics"):
        reply = host.http(console.port, path, "--max-time", "3")
        assert reply is not None and reply[0] == 403, path
        assert reply[2] == b"reads from other hosts need --http-token\n"
    assert console.request("GET", "/api/status")[0] == 200  # loopback still reads
    assert console.request("GET", "/metrics")[0] == 200
    log = console.server.log()
    assert "The console answers other hosts only /healthz and /readyz; give --http-token" in log


def test_metrics_public_opens_metrics_only(
    host: OtherHost, start_console: Callable[..., Console]
) -> None:
    console = start_console("--console-listen", host.here, "--metrics-public")
    reply = host.http(console.port, "/metrics")
    assert reply is not None and reply[0] == 200
    assert b"geartrain_connections" in reply[2]
    assert status(host, console, "/api/status") == 403
    assert "other hosts only /healthz and /readyz, /metrics" in console.server.log()
