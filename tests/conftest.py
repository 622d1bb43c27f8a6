"""Fixtures that start real servers (see serverproc.py), and real faults: a small
filesystem that fills, an unprivileged user."""

from __future__ import annotations

import pwd
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import serverproc
from machine import add_system_user, mount_small_disk, remove_system_user, unmount_small_disk
from serverproc import InProcess, ServerProc

SERVER_KINDS = ["geartrain", "gearmand"]


@pytest.fixture
def geartrain() -> Iterator[ServerProc]:
    """A `geartrain server` with the in-memory queue on a free port."""
    server = serverproc.start_geartrain()
    yield server
    server.cleanup()


@pytest.fixture
def gearmand() -> Iterator[ServerProc]:
    """Debian's gearmand 1.1 on a free port."""
    server = serverproc.start_gearmand()
    yield server
    server.cleanup()


@pytest.fixture
def server_flags() -> tuple[str, ...]:
    """The flags the `server` fixture starts both servers with (a test parametrizes it)."""
    return ()


@pytest.fixture(params=SERVER_KINDS)
def server(
    request: pytest.FixtureRequest, server_flags: tuple[str, ...]
) -> Iterator[ServerProc | InProcess]:
    """The same test against geartrain and against gearmand.  For a test marked
    ``in_process`` geartrain is the server in this process (the plugin's
    ``gearman_server``), which starts in milliseconds."""
    marker = request.node.get_closest_marker("in_process")
    if request.param == "geartrain" and marker is not None and marker.args != (False,):
        assert not server_flags, "an in-process server takes no flags"
        yield InProcess(request.getfixturevalue("gearman_server"))
        return
    srv = serverproc.start(request.param, server_flags)
    yield srv
    srv.cleanup()


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProc]]:
    """Factory: ``start_server(kind, args=[...])``; everything started is stopped after."""
    started: list[ServerProc] = []

    def start(
        kind: str = "geartrain",
        args: Any = (),
        port: int | None = None,
        tls: bool = False,
        ready: bool = True,
    ) -> ServerProc:
        srv = serverproc.start(kind, args, port, tls, ready)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.cleanup()


@pytest.fixture
def small_disk() -> Iterator[Callable[[str], Path]]:
    """Factory: ``small_disk("8m")`` mounts a tmpfs of that size (machine.py) and
    returns its directory; unmounted after the test."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        mounted.append(mount_small_disk(size))
        return mounted[-1]

    yield mount
    for where in mounted:
        unmount_small_disk(where)


@pytest.fixture
def system_user() -> Iterator[pwd.struct_passwd]:
    """A real unprivileged user of this test's own (machine.py), removed after the
    test.  Request it before any server fixture, so that its processes end first."""
    user = add_system_user()
    try:
        yield user
    finally:
        remove_system_user(user)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed server certificate for 127.0.0.1 and its key, made by openssl."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "server.pem", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(
    start_server: Callable[..., ServerProc], certificate: tuple[Path, Path]
) -> ServerProc:
    """A `geartrain server --ssl` with the self-signed ``certificate``."""
    cert, key = certificate
    return start_server(
        "geartrain", ["--ssl", f"--ssl-certificate={cert}", f"--ssl-key={key}"], tls=True
    )
