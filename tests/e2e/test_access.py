"""Access control end to end: real certificates made with openssl, a real server, real peers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import shutil
import signal
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from geartrain import Admin, Client, Worker
from geartrain.errors import ConnectionLost, ServerError
from geartrain.protocol import PacketType
from gt_helpers import wait_for, working
from serverproc import ServerProc, free_port
from wire import Wire

pytestmark = pytest.mark.timeout(120)

PHP_CLIENT = Path(__file__).parent.parent / "php_peers" / "client.php"

RULES = """
[access.anonymous]            # peers with no certificate: nothing

[access.identities.resizer]
certificates = ["resizer"]
work = ["resize.*"]

[access.identities.frontend]
certificates = ["frontend"]
submit = ["resize.*"]
status = ["resize.*"]
admin = ["read"]

[access.identities.ops]
certificates = ["ops"]
submit = ["*"]
status = ["*"]
admin = ["*"]
"""


class Pki:
    """A CA, a server certificate and client certificates, all made by openssl."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = self._ca("ca")
        self.other_ca = self._ca("other-ca")
        self.server = self.issue("server", "127.0.0.1", san="IP:127.0.0.1")

    def _run(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.dir)

    def _ca(self, name: str) -> Path:
        self._run(
            *(
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                f"/CN={name}",
            ),
            *("-keyout", f"{name}.key", "-out", f"{name}.pem"),
        )
        (self.dir / f"{name}.db").mkdir()
        (self.dir / f"{name}.db" / "index.txt").write_text("")
        (self.dir / f"{name}.db" / "serial").write_text("1000\n")
        (self.dir / f"{name}.cnf").write_text(
            f"[ca]\ndefault_ca = ca\n[ca]\ndir = {self.dir}/{name}.db\n"
            "database = $dir/index.txt\nnew_certs_dir = $dir\nserial = $dir/serial\n"
            "default_md = sha256\npolicy = any\ncopy_extensions = copy\nunique_subject = no\n"
            "[any]\ncommonName = supplied\n"
        )
        return self.dir / f"{name}.pem"

    def issue(
        self,
        name: str,
        common_name: str,
        *,
        ca: str = "ca",
        san: str | None = None,
        dates: tuple[str, str] | None = None,
    ) -> tuple[Path, Path]:
        """A certificate and key for ``common_name``; ``dates`` (YYYYMMDDHHMMSSZ) else 2 days."""
        extra = ["-addext", f"subjectAltName={san}"] if san else []
        self._run(
            *("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={common_name}"),
            *extra,
            *("-keyout", f"{name}.key", "-out", f"{name}.csr"),
        )
        validity = ["-startdate", dates[0], "-enddate", dates[1]] if dates else ["-days", "2"]
        self._run(
            *("ca", "-batch", "-notext", "-config", f"{ca}.cnf", "-cert", f"{ca}.pem"),
            *("-keyfile", f"{ca}.key", "-in", f"{name}.csr", "-out", f"{name}.pem", *validity),
        )
        return self.dir / f"{name}.pem", self.dir / f"{name}.key"

    def context(self, name: str | None) -> ssl.SSLContext:
        """A client context trusting our CA, presenting ``name``'s certificate."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if name is not None:
            cert = self.dir / f"{name}.pem"
            if not cert.exists():
                self.issue(name, name)
            context.load_cert_chain(cert, self.dir / f"{name}.key")
        return context


@pytest.fixture(autouse=True)
def _collect_tls_leftovers() -> Iterator[None]:
    """asyncio closes a TLS connection after a close_notify round trip, which a
    connection closed as the test's event loop ends never finishes; the plain
    socket under it is then left to the collector.  Collect it here, quietly,
    rather than in whichever test the collector happens to run next."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def settings(tmp_path: Path) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(RULES)
    return path


@pytest.fixture
def tls_server(start_server: Callable[..., ServerProc], pki: Pki, settings: Path) -> ServerProc:
    cert, key = pki.server
    args = [f"--ssl-certificate={cert}", f"--ssl-key={key}", f"--ssl-ca-file={pki.ca}"]
    args += ["--ssl", "--ssl-verify-clients", f"--settings={settings}"]
    server = start_server("geartrain", [*args, "--ssl-handshake-timeout=2"], ready=False)
    wait_ready(server, pki.context("ops"))
    return server


def wait_ready(server: ServerProc, context: ssl.SSLContext) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            tls_echo(server.port, context)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(server.log()) from None
            time.sleep(0.05)


async def function_status(server: ServerProc, pki: Pki) -> dict[str, tuple[int, int, int]]:
    async with Admin(server.address, ssl=pki.context("ops")) as admin:
        return {s.function: (s.total, s.running, s.workers) for s in await admin.status()}


@contextlib.asynccontextmanager
async def serving(
    worker: Worker, server: ServerProc, pki: Pki, function: str
) -> AsyncIterator[None]:
    """Run ``worker`` for the block, once the server lists it for ``function``."""
    await worker.start()
    try:
        await wait_for(lambda: _has_worker(server, pki, function), timeout=20)
        yield
    finally:
        worker.stop(graceful=False)
        await worker.wait()


async def _has_worker(server: ServerProc, pki: Pki, function: str) -> bool:
    return (await function_status(server, pki)).get(function, (0, 0, 0))[2] > 0


async def test_worker_gets_what_it_may_work_on_and_client_is_refused_the_rest(
    tls_server: ServerProc, pki: Pki
) -> None:
    worker = Worker([tls_server.address], ssl=pki.context("resizer"))
    worker.register("resize.png", lambda job: b"resized " + job.data)
    worker.register("billing", lambda job: b"the worker saw " + job.data)
    async with serving(worker, tls_server, pki, "resize.png"):
        async with Client([tls_server.address], ssl=pki.context("frontend")) as client:
            assert await client.submit("resize.png", b"cat", timeout=20) == b"resized cat"
            with pytest.raises(ServerError) as refused:
                await client.submit("billing", b"invoice", timeout=20)
            assert refused.value.code == "PERMISSION_DENIED"
        # Someone allowed to submit billing: the job waits, the resizer never gets it.
        async with Client([tls_server.address], ssl=pki.context("ops")) as ops:
            await ops.submit_background("billing", b"invoice")
            await asyncio.sleep(0.5)
        status = await function_status(tls_server, pki)
        assert status["billing"] == (1, 0, 0)
        assert status["resize.png"][2] == 1
    assert "Refused work billing for resizer from 127.0.0.1" in tls_server.log()
    assert "Refused submit billing for frontend from 127.0.0.1" in tls_server.log()


def tls_echo(port: int, context: ssl.SSLContext) -> tuple[bytes, ...]:
    """ECHO_REQ over TLS; raises if the server refuses the handshake."""
    with Wire(port, timeout=10, tls=context) as conn:
        conn.send(PacketType.ECHO_REQ, b"x")
        return conn.expect(PacketType.ECHO_RES)


def test_expired_and_foreign_certificates_are_refused_at_the_handshake(
    tls_server: ServerProc, pki: Pki
) -> None:
    pki.issue("expired", "frontend", dates=("20200101000000Z", "20200201000000Z"))
    pki.issue("foreign", "frontend", ca="other-ca")
    assert tls_echo(tls_server.port, pki.context("ops")) == (b"x",)
    for name in ("expired", "foreign"):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_echo(tls_server.port, pki.context(name))
    # A peer that never starts its handshake is dropped after the deadline (2 s here).
    started = time.monotonic()
    with Wire(tls_server.port, timeout=30) as silent:
        assert silent.sock.recv(100) == b""
    assert time.monotonic() - started < 20
    asyncio.run(wait_for(lambda: "no handshake within 2 s" in tls_server.log(), timeout=10))
    log = tls_server.log()
    refused = "Refused TLS handshake from 127.0.0.1: certificate not accepted"
    assert f"{refused} (certificate has expired)" in log
    assert f"{refused} (unable to get local issuer certificate)" in log


async def test_reload_with_sighup_applies_to_new_requests_and_keeps_peers(
    tls_server: ServerProc, pki: Pki, settings: Path
) -> None:
    worker = Worker([tls_server.address], ssl=pki.context("resizer"))
    worker.register("resize.png", lambda job: b"ok")
    frontend = Client([tls_server.address], ssl=pki.context("frontend"))
    async with serving(worker, tls_server, pki, "resize.png"), frontend as client:
        with pytest.raises(ServerError):
            await client.submit_background("billing", b"1")
        settings.write_text(
            RULES.replace('submit = ["resize.*"]', 'submit = ["resize.*", "billing"]').replace(
                'work = ["resize.*"]', 'work = ["thumb.*"]'
            )
        )
        tls_server.signal(signal.SIGHUP)
        await wait_for(lambda: "Settings reloaded" in tls_server.log(), timeout=10)
        await client.submit_background("billing", b"1")  # same connection, new rules
        status = await function_status(tls_server, pki)
        assert status["resize.png"][2] == 0  # no longer allowed: unregistered
        async with Admin(tls_server.address, ssl=pki.context("ops")) as admin:
            assert len(await admin.workers()) >= 3  # worker and client still connected
        # A broken file on SIGHUP: one line in the log, the rules stay.
        settings.write_text("[access\n")
        tls_server.signal(signal.SIGHUP)
        await wait_for(lambda: "keeping the previous settings" in tls_server.log(), timeout=10)
        await client.submit_background("billing", b"2")


async def test_admin_rights_over_the_admin_protocol(tls_server: ServerProc, pki: Pki) -> None:
    async with Client([tls_server.address], ssl=pki.context("ops")) as ops_client:
        handle = (await ops_client.submit_background("resize.png", b"x")).decode()
    denied = b"ERR PERMISSION_DENIED not+allowed+by+the+access+rules"
    async with Admin(tls_server.address, ssl=pki.context("frontend")) as reader:
        assert any(s.function == "resize.png" for s in await reader.status())
        for line in (f"cancel job {handle}", "drop function x", "maxqueue x 1"):
            assert (await reader.command(line)).strip() == denied
        assert b"frontend\tregister=None\tinvoke=resize.*" in await reader.command("acl list")
        assert (await reader.command("acl grant invoke frontend *")).strip() == (
            b"ERR PERMISSION_DENIED"
        )
    async with Admin(tls_server.address, ssl=pki.context("ops")) as ops:
        assert (await ops.command(f"cancel job {handle}")).strip() == b"OK"
        assert (await ops.command("acl grant invoke frontend billing")).strip() == b"OK"
    async with Client([tls_server.address], ssl=pki.context("frontend")) as client:
        await client.submit_background("billing", b"granted live")


@pytest.fixture
def plain_server(start_server: Callable[..., ServerProc], settings: Path) -> ServerProc:
    settings.write_text(ANONYMOUS_RULES.format(network="127.0.0.0/8"))
    return start_server("geartrain", [f"--settings={settings}"])


ANONYMOUS_RULES = """
[access.anonymous]
admin = ["read"]

[access.identities.local]
networks = ["{network}"]
submit = ["*"]
work = ["*"]
admin = ["read"]
"""


def php_submit(
    server: ServerProc, function: str, data: bytes
) -> subprocess.CompletedProcess[bytes]:
    php = shutil.which("php")
    assert php, "php is not installed (scripts/install-system-deps installs it)"
    return subprocess.run(
        [php, str(PHP_CLIENT), "127.0.0.1", str(server.port), function],
        input=data,
        capture_output=True,
        timeout=60,
    )


async def test_anonymous_php_peer_by_address(plain_server: ServerProc, settings: Path) -> None:
    worker = Worker([plain_server.address])
    worker.register("upper", lambda job: job.data.upper())
    async with working(worker, "upper"):
        allowed = await asyncio.to_thread(php_submit, plain_server, "upper", b"hello")
        assert (allowed.returncode, allowed.stdout) == (0, b"HELLO"), allowed.stderr
        # Only 10/8 is trusted now: the PHP peer on 127.0.0.1 is anonymous, and refused.
        settings.write_text(ANONYMOUS_RULES.format(network="10.0.0.0/8"))
        plain_server.signal(signal.SIGHUP)
        await wait_for(lambda: "Settings reloaded" in plain_server.log(), timeout=10)
        refused = await asyncio.to_thread(php_submit, plain_server, "upper", b"hello")
        assert refused.returncode == 2 and b"Permission denied" in refused.stderr, refused
    assert "Refused submit upper for anonymous from 127.0.0.1" in plain_server.log()


async def test_python_client_without_certificate_cannot_connect(
    tls_server: ServerProc, pki: Pki
) -> None:
    with pytest.raises((ConnectionLost, ssl.SSLError, OSError)):
        async with Client([tls_server.address], ssl=pki.context(None)) as client:
            await client.echo(b"x")


def test_a_bad_settings_file_stops_the_start_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[access.identities.x]\nwork = "resize.*"\nadmin = ["everything"]\n')
    result = subprocess.run(
        [sys.executable, "-m", "geartrain", "server", f"--settings={path}", "--check-args"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "[access.identities.x] admin: unknown action 'everything'" in result.stderr


async def test_refusals_are_counted_in_metrics(
    start_server: Callable[..., ServerProc], settings: Path
) -> None:
    import http.client

    def get(port: int, path: str) -> tuple[int, str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", path)
            reply = conn.getresponse()
            return reply.status, reply.getheader("Content-Type", ""), reply.read().decode()
        finally:
            conn.close()

    settings.write_text("[access.anonymous]\nadmin = ['read']\n")
    metrics_port = free_port()
    server = start_server(
        "geartrain", [f"--settings={settings}", "--metrics-port", str(metrics_port)]
    )
    async with Client([server.address]) as client:
        with pytest.raises(ServerError):
            await client.submit_background("billing", b"x")
    lines: set[str] = set()

    async def scraped() -> bool:  # the metrics port opens just after the job port
        try:
            _, _, text = await asyncio.to_thread(get, metrics_port, "/metrics")
        except OSError:
            return False
        lines.update(text.splitlines())
        return True

    await wait_for(scraped, timeout=20)
    assert 'geartrain_access_refused_total{kind="submit"} 1.0' in lines
    assert 'geartrain_access_refused_total{kind="work"} 0.0' in lines
