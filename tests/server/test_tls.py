"""`geartrain server --ssl`: TLS on every connection, with gearmand's flags and env vars."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from geartrain import Client, Worker
from geartrain.protocol import REQ, PacketType, pack
from serverproc import ServerProc
from wire import T, Wire, insecure_context


def client_context(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def test_round_trip_over_tls(tls_server: ServerProc, certificate: tuple[Path, Path]) -> None:
    context = client_context(certificate[0])
    async with Worker([tls_server.address], ssl=context) as worker:
        worker.register("upper", lambda job: job.data.upper())
        async with Client([tls_server.address], ssl=context) as client:
            assert await client.submit("upper", b"secret", timeout=10) == b"SECRET"


def test_plaintext_peer_gets_nothing(tls_server: ServerProc) -> None:
    with Wire(tls_server.port) as conn:
        conn.send(PacketType.ECHO_REQ, b"hello")
        try:
            data = conn.sock.recv(4096)
        except ConnectionResetError:
            data = b""
    assert not data.startswith(b"\0RES")  # a TLS alert or a closed connection, never a reply


def test_missing_certificate_is_a_clear_error(tmp_path: Path) -> None:
    # Not with --check-args: like gearmand's, it reads no file and `--ssl` alone passes.
    result = subprocess.run(
        [sys.executable, "-m", "geartrain", "server", "--ssl", "-q", "builtin", "-p", "0"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "--ssl needs --ssl-certificate" in result.stderr


async def test_client_certificates_required_when_asked(
    start_server: Callable[..., ServerProc], certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate  # self-signed: it is its own CA
    args = ["--ssl", f"--ssl-certificate={cert}", f"--ssl-key={key}", f"--ssl-ca-file={cert}"]
    server = start_server("geartrain", [*args, "--ssl-verify-clients"], ready=False)
    with_cert = client_context(cert)
    with_cert.load_cert_chain(cert, key)
    await wait_ready(server, with_cert)
    async with Client([server.address], ssl=with_cert) as client:
        assert await client.echo(b"hi") == b"hi"
    with pytest.raises((ssl.SSLError, ConnectionError)):
        echo_without_certificate(server.port, cert)


def echo_without_certificate(port: int, ca: Path) -> None:
    with Wire(port, tls=client_context(ca)) as conn:
        conn.send(PacketType.ECHO_REQ, b"x")
        conn.expect(PacketType.ECHO_RES)


async def wait_ready(server: ServerProc, context: ssl.SSLContext) -> None:
    """Wait until a TLS handshake with ``context`` succeeds.  Plain blocking
    sockets: asyncio's failed connection attempts can leave sockets for the
    collector to find (and warn about) in a later test."""
    import time

    deadline = time.monotonic() + 20
    while True:
        try:
            Wire(server.port, tls=context).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(server.log()) from None
            time.sleep(0.05)


def test_large_packet_sent_slowly_over_tls(tls_server: ServerProc) -> None:
    payload = bytes(range(256)) * 8192
    packet = pack(REQ, T.ECHO_REQ, (payload,))
    with Wire(tls_server.port, tls=insecure_context()) as c:
        for part in (packet[:5000], packet[5000:900_000], packet[900_000:]):
            c.raw(part)
            time.sleep(0.2)
        c.send(T.ECHO_REQ, b"next")
        assert c.expect(T.ECHO_RES, timeout=10) == (payload,)
        assert c.expect(T.ECHO_RES, timeout=10) == (b"next",)
