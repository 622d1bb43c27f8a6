"""Real job servers for tests: a `geartrain server` subprocess or Debian's gearmand.

Both are started on a free loopback port and stopped after the test.  Tests
that should hold for any Gearman server take the parametrised ``server``
fixture (see conftest.py) and run against both; where they only talk to the
server from Python, geartrain's case may be the server in the test's own
process (:class:`InProcess`).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from geartrain.embedded import EmbeddedServer
from wire import HOST, admin_command

GEARMAND = "/usr/sbin/gearmand"


_GIVEN: set[int] = set()


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range, never the same one twice:
    a server a test kills and starts again on its port must not find it taken meanwhile
    by an outgoing connection, nor by another port of the same test (a console's)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randrange(10_000, max(low, 10_001))
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


@dataclass
class ServerProc:
    """A job server running as a child process."""

    kind: str
    """``"geartrain"`` or ``"gearmand"``."""
    argv: list[str]
    port: int
    host: str = HOST
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    tls: bool = False
    tmpdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gt-srv-")))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 15.0, ready: bool = True) -> ServerProc:
        """Start the process; with ``ready``, wait until it answers `version`."""
        self.log_path = self.tmpdir / "server.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        if not ready:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited at start:\n{self.log()}")
            try:
                if admin_command(self.port, "version", timeout=1.0, tls=self.tls).startswith(b"OK"):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not answer on {self.address}:\n{self.log()}")

    def log(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> ServerProc:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


@dataclass
class InProcess:
    """geartrain's server in the test's own process (geartrain.embedded), where a
    test that only talks to it from Python takes a :class:`ServerProc`."""

    server: EmbeddedServer
    kind: str = "geartrain"

    @property
    def pid(self) -> int:
        return os.getpid()

    def __getattr__(self, name: str) -> object:  # host, port, address
        return getattr(self.server, name)


def geartrain_argv(port: int, args: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "geartrain", "server", "-L", HOST, "-p", str(port), *args]


def start_geartrain(
    args: Sequence[str] = (), port: int | None = None, tls: bool = False, ready: bool = True
) -> ServerProc:
    """Start `geartrain server` with the in-memory queue unless ``args`` picks one."""
    port = port or free_port()
    if not any(a == "-q" or a.startswith(("--queue-type", "--store-url")) for a in args):
        args = ["-q", "builtin", *args]
    env_args = [*args]
    server = ServerProc("geartrain", geartrain_argv(port, env_args), port, tls=tls)
    return server.start(ready=ready)


def start_gearmand(args: Sequence[str] = (), port: int | None = None) -> ServerProc:
    """Start Debian's gearmand 1.1 on a free loopback port."""
    port = port or free_port()
    server = ServerProc("gearmand", [], port)
    server.argv = [
        GEARMAND,
        f"--listen={HOST}",
        f"--port={port}",
        f"--pid-file={server.tmpdir / 'gearmand.pid'}",
        "--log-file=stderr",
        "--verbose=ERROR",
        *args,
    ]
    return server.start()


def start(
    kind: str,
    args: Sequence[str] = (),
    port: int | None = None,
    tls: bool = False,
    ready: bool = True,
) -> ServerProc:
    if kind == "geartrain":
        return start_geartrain(args, port, tls, ready)
    return start_gearmand(args, port)


def gearmand_available() -> bool:
    return os.access(GEARMAND, os.X_OK)


@contextlib.contextmanager
def running(kind: str, args: Sequence[str] = ()):  # type: ignore[no-untyped-def]
    server = start(kind, args)
    try:
        yield server
    finally:
        server.cleanup()
