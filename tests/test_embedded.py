"""geartrain.embedded: the real server in the test's own process, on its event loop or a
thread of its own; and the pytest plugin that ships with the package (geartrain.testing)."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from geartrain import Admin, Client, ServerError, Worker, WorkerJob, sync
from geartrain.embedded import EmbeddedServer
from geartrain.server.app import ServerApp, StartupError
from geartrain.server.flags import ServerConfig
from geartrain.server.settings import SettingsError
from gt_helpers import working

pytestmark = pytest.mark.timeout(60)


async def test_serves_on_the_running_loop_on_a_port_of_its_own() -> None:
    sigterm = signal.getsignal(signal.SIGTERM)
    async with EmbeddedServer() as server:
        assert server.port > 0 and server.address == f"127.0.0.1:{server.port}"
        assert signal.getsignal(signal.SIGTERM) is sigterm  # the program's signals are its own
        worker = Worker(server.address)

        @worker.register
        async def upper(job: WorkerJob) -> bytes:
            return job.data.upper()

        async with working(worker), Client(server.address) as client:
            assert await client.submit("upper", b"abc") == b"ABC"
            proc = await asyncio.create_subprocess_exec(  # the C tool reaches it too
                "gearman", "-h", "127.0.0.1", "-p", str(server.port), "-f", "upper", "x",
                stdout=subprocess.PIPE,
            )  # fmt: skip
            assert (await proc.communicate())[0] == b"X"
    with socket.create_server(("127.0.0.1", server.port)):  # stopped: the port is free again
        pass


async def test_a_sqlite_queue_keeps_background_jobs_across_a_restart(tmp_path: Path) -> None:
    queue = tmp_path / "queue.sqlite3"
    async with EmbeddedServer(sqlite=queue) as server, Client(server.address) as client:
        await client.submit_background("later", b"kept", unique="k1")
    async with EmbeddedServer(sqlite=queue) as server, Admin(server.address) as admin:
        assert await admin.show_unique_jobs() == ["k1"]
    temporary = EmbeddedServer(sqlite=True)
    async with temporary:
        directory = temporary._tmpdir
        assert directory is not None and (directory / "queue.sqlite3").exists()
    assert not directory.exists()


async def test_settings_and_flags(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[functions."one_*"]\nmax_jobs = 1\n')
    config = ServerConfig(handle_prefix="H:embedded")
    async with (
        EmbeddedServer(settings=settings, config=config) as server,
        Client(server.address) as client,
    ):
        assert (await client.submit_background("one_at_a_time", b"1")).startswith(b"H:embedded:")
        with pytest.raises(ServerError):
            await client.submit_background("one_at_a_time", b"2")
    settings.write_text("[functions.x]\nattempts = 'many'\n")
    with pytest.raises(SettingsError, match=str(settings)):
        await EmbeddedServer(settings=settings).start()


async def test_a_taken_port_is_a_startup_error() -> None:
    async with EmbeddedServer() as first:
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            await EmbeddedServer(port=first.port).start()
        with pytest.raises(StartupError):
            EmbeddedServer(port=first.port).start_thread()


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_a_port_taken_between_bind_and_listen_is_a_startup_error(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """The server binds, loads its queue, then listens: a socket that binds the port too
    (SO_REUSEADDR) and listens first in between leaves it a one-line reason, not a crash."""
    rival = socket.socket()
    rival.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    app = ServerApp(ServerConfig(host="127.0.0.1", port=0), None, handle_signals=False)

    def take_the_port() -> None:
        rival.bind(("127.0.0.1", app.port))
        rival.listen()

    app.on_bound = take_the_port
    taken = "cannot listen on 127.0.0.1:0: Address already in use"
    with (
        rival,
        asyncio.Runner(loop_factory=loop_factory) as runner,
        pytest.raises(StartupError, match=taken),
    ):
        runner.run(app.run())


def test_on_a_thread_of_its_own_for_code_without_asyncio() -> None:
    with EmbeddedServer() as server, sync.Worker(server.address) as worker:
        worker.register("upper", lambda job: job.data.upper())
        with sync.Client(server.address) as client:
            assert client.submit("upper", "abc", timeout=10) == b"ABC"
    with socket.create_server(("127.0.0.1", server.port)):
        pass


# -- the pytest plugin -------------------------------------------------------------------


def test_sync_fixtures(gearman_sync_worker: sync.Worker, gearman_sync_client: sync.Client) -> None:
    @gearman_sync_worker.register
    def resize(job: WorkerJob) -> dict[str, int]:
        return {"width": job.value["width"] // 2}

    assert gearman_sync_client.submit("resize", {"width": 640}, timeout=10) == {"width": 320}


async def test_asyncio_fixtures(gearman_worker: Worker, gearman_client: Client) -> None:
    @gearman_worker.register
    async def resize(job: WorkerJob) -> dict[str, int]:
        return {"width": job.value["width"] // 2}

    assert await gearman_client.submit("resize", {"width": 640}, timeout=10) == {"width": 320}


@pytest.mark.parametrize("gearman_server_options", [{"sqlite": True}])
def test_server_options(gearman_server: EmbeddedServer, gearman_server_options: Any) -> None:
    assert gearman_server._tmpdir is not None


def test_the_plugin_is_installed_with_the_package(tmp_path: Path) -> None:
    # A project of its own, no conftest: the fixtures come from the entry point.
    (tmp_path / "test_uses_geartrain.py").write_text(
        textwrap.dedent(
            """
            def test_round_trip(gearman_sync_worker, gearman_sync_client):
                gearman_sync_worker.register("echo", lambda job: job.data)
                assert gearman_sync_client.submit("echo", "hi", timeout=10) == b"hi"
            """
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
