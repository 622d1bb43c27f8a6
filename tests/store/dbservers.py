"""Private database servers: for outage tests, and where no shared one runs.

The shared services on a machine must keep running for everyone else, so
outage tests start their own Redis or PostgreSQL on a free port and stop that.
On a machine where PostgreSQL, MariaDB or Redis does not answer as the tests
expect (a fresh CI machine), the store tests run against private ones instead
(see `ensure_services`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from serverproc import free_port


def _wait_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class PrivateRedis:
    """A redis-server of the test's own.  It keeps nothing on disk, or with
    ``appendonly`` an fsync-always AOF in a temporary directory, so that a kill
    loses nothing it acknowledged and a restart on the same port loads it all."""

    def __init__(self, appendonly: bool = False) -> None:
        self.port = free_port()
        self.appendonly = appendonly
        self.dir = Path(tempfile.mkdtemp(prefix="gt-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        persistence = ["--appendonly", "no"]
        if self.appendonly:
            persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--dir", str(self.dir), *persistence],
            stdout=subprocess.DEVNULL,
        )
        _wait_port(self.port)

    def kill(self) -> None:
        """SIGKILL: what it had not written is lost, as in a crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, in a temporary directory.

    PostgreSQL refuses to run as root, so when the tests run as root the
    cluster belongs to the `postgres` system user.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gt-pg-"))
        self.data = self.dir / "data"
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL server binaries not found")
        self.bin = Path(bins[-1])
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, cwd=self.dir)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def kill(self) -> None:
        """SIGKILL to the postmaster and every backend at once (pg_ctl made the
        postmaster a process group leader), then wait until they are gone: a
        restart recovers from the WAL, as after a crash of the machine's
        processes (the page cache survives)."""
        leader = int((self.data / "postmaster.pid").read_text().split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(leader, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL's processes outlived SIGKILL (group {leader})")

    def conninfo(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def create_database(self, name: str) -> None:
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), name)

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateMariaDB:
    """A MariaDB server of the test's own, in a temporary directory, with no
    privilege checks (root, no password, as the tests expect of the shared one)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gt-mariadb-"))
        self.data = self.dir / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        # mariadbd refuses to run as root unless told which user to become.
        self.user = ["--user=mysql"] if os.geteuid() == 0 else []
        if self.user:
            shutil.chown(self.dir, "mysql", "mysql")

    def init(self) -> None:
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.data}", *self.user]
            + ["--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.data}", f"--port={self.port}"]
            + ["--bind-address=127.0.0.1", f"--socket={self.dir / 'sock'}", *self.user]
            + ["--skip-grant-tables", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0"]
            + [f"--log-error={self.dir / 'log'}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, timeout=60)

    def create_database(self, name: str) -> None:
        subprocess.run(
            ["mariadb", "-h", "127.0.0.1", "-P", str(self.port), "-u", "root"]
            + ["-e", f"CREATE DATABASE IF NOT EXISTS {name}"],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _answers(kind: str, address: dict[str, object]) -> bool:
    """Does the service at ``address`` let the tests in as they expect?

    More than an open port: a PostgreSQL that Debian's package started asks
    for a password, and that is no use to the tests either."""
    import asyncio

    async def probe() -> None:
        if kind == "postgres":
            import asyncpg

            conn = await asyncpg.connect(database="test", timeout=5, **address)
            await conn.close()
        elif kind == "mysql":
            import asyncmy

            conn = await asyncmy.connect(db="test", connect_timeout=5, **address)
            await conn.ensure_closed()
        else:
            import redis.asyncio as aioredis

            client = aioredis.Redis(socket_timeout=5, **address)  # type: ignore[arg-type]
            try:
                await client.ping()
            finally:
                await client.aclose()

    # A thread of its own: session fixtures may be set up inside a test's running loop.
    with ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(asyncio.run, asyncio.wait_for(probe(), 10)).result()
            return True
        except Exception:
            return False


@contextlib.contextmanager
def ensure_services(addresses: dict[str, dict[str, object]]) -> Iterator[list[str]]:
    """For each of ``postgres``, ``mysql`` and ``redis`` whose address does not
    answer, start a private server and point that address (updated in place) at
    it; stop them all on exit.  Yields what was started, for the test report."""
    started: list[PrivatePostgres | PrivateMariaDB | PrivateRedis] = []
    notes: list[str] = []
    try:
        for kind, address in addresses.items():
            if _answers(kind, address):
                continue
            server: PrivatePostgres | PrivateMariaDB | PrivateRedis
            server = {"postgres": PrivatePostgres, "mysql": PrivateMariaDB}.get(
                kind, PrivateRedis
            )()
            started.append(server)
            if not isinstance(server, PrivateRedis):
                server.init()
            server.start()
            if not isinstance(server, PrivateRedis):
                server.create_database("test")
            notes.append(
                f"{kind}: nothing answered at {address['host']}:{address['port']}; "
                f"using a private server on 127.0.0.1:{server.port}"
            )
            address.update(host="127.0.0.1", port=server.port)
        yield notes
    finally:
        for server in reversed(started):
            server.cleanup()
