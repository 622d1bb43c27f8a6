"""A geartrain server inside a Python program or a test suite.

It is the server `geartrain server` runs (the same :class:`~geartrain.server.ServerApp`),
listening on loopback on a port the system picks, with the memory queue or a
SQLite one, and it speaks the protocol over real sockets, so any client (Python,
PHP, the C tools) reaches it at :attr:`EmbeddedServer.address`::

    async with EmbeddedServer() as server:              # on the running event loop
        async with Client(server.address) as client:
            ...

    with EmbeddedServer(sqlite=True) as server:         # on a thread and loop of its own
        ...

Unlike the command, it leaves the program's signals alone, speaks no TLS, opens
no HTTP listener and does not busy-poll (see :mod:`geartrain.server.busy_poll`) unless
its ``config`` says so.  The pytest fixtures built on it are in
:mod:`geartrain.testing`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import shutil
import tempfile
import threading
from pathlib import Path

from .server.app import ServerApp
from .server.flags import ServerConfig
from .server.settings import Settings, load_settings
from .store.durability import DEFAULT
from .store.sqlite import SqliteStore

__all__ = ["EmbeddedServer"]

_QUIET = ServerConfig(busy_poll_us=0)
"""The default configuration: gearmand's defaults, without busy polling."""


class EmbeddedServer:
    """A job server in this process: on the running event loop (``async with``,
    :meth:`start` and :meth:`stop`), or on a thread and event loop of its own for
    code that does not run asyncio (``with``, :meth:`start_thread` and
    :meth:`stop_thread`).

    Args:
        host: the address to listen on.
        port: the port; 0 (the default) lets the system pick a free one.
        sqlite: keep background jobs in SQLite: ``True`` for a file in a
            temporary directory removed at :meth:`stop`, or the path of a file
            that is kept (a server started again on it finds its jobs).  By
            default they are kept in memory only.
        settings: a settings file (TOML, as ``geartrain server --settings``):
            retry policies, failed-job bounds, schedules, access rules.
        config: everything else ``geartrain server`` takes as flags (its host
            and port are replaced by ``host`` and ``port``).

    Raises (from :meth:`start` and :meth:`start_thread`):
        StartupError: the port is taken or the queue cannot be opened.
        SettingsError: the settings file cannot be used.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sqlite: bool | str | os.PathLike[str] = False,
        settings: str | os.PathLike[str] | None = None,
        config: ServerConfig | None = None,
    ) -> None:
        self.host = host
        self.port = port
        """The port it listens on, once started."""
        self.sqlite = sqlite
        self.settings = settings
        self.config = config or _QUIET
        self._app: ServerApp | None = None
        self._task: asyncio.Task[None] | None = None
        self._tmpdir: Path | None = None
        # Serving on a thread of its own: the thread, its loop, and the request to stop.
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def address(self) -> str:
        """``host:port``, as the clients take it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def __aenter__(self) -> EmbeddedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen, load the queue, and serve in the background until :meth:`stop`."""
        if self._task is not None:
            raise RuntimeError("server already started")
        settings_file = os.fspath(self.settings) if self.settings is not None else None
        settings = load_settings(settings_file) if settings_file else Settings()
        config = dataclasses.replace(
            self.config, host=self.host, port=self.port, settings_file=settings_file
        )
        store = None
        if self.sqlite is not False:
            if self.sqlite is True:
                self._tmpdir = Path(tempfile.mkdtemp(prefix="geartrain-"))
                path = self._tmpdir / "queue.sqlite3"
            else:
                path = Path(self.sqlite)
            store = SqliteStore(path, durability=DEFAULT)
            config.durability = DEFAULT.value
        app = self._app = ServerApp(
            config,
            store,
            store_description=str(store) if store is not None else "memory only",
            settings=settings,
            handle_signals=False,
        )
        loop = asyncio.get_running_loop()
        listening = loop.create_future()
        app.on_listening = lambda: listening.set_result(None)
        task = self._task = loop.create_task(app.run(), name=f"geartrain server {self.host}")
        await asyncio.wait([listening, task], return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():  # run() ended: it could not start
            self._task = None
            self._remove_tmpdir()
            task.result()  # raises why
            raise RuntimeError("the server stopped while it started")
        self.port = app.port

    async def stop(self) -> None:
        """Close every connection and the queue, and stop listening."""
        app, task = self._app, self._task
        if app is None or task is None:
            return
        app.shutdown(graceful=False)
        try:
            await task
        finally:
            self._app = self._task = None
            self._remove_tmpdir()

    # -- on a thread of its own -------------------------------------------------------

    def __enter__(self) -> EmbeddedServer:
        self.start_thread()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_thread()

    def start_thread(self) -> None:
        """Serve on a thread and event loop of its own; return once the server
        listens (or raise why it cannot)."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(ready),), name="geartrain-server", daemon=True
        )
        self._thread.start()
        try:
            ready.result()
        except BaseException:
            self._thread.join()
            self._thread = None
            raise

    def stop_thread(self) -> None:
        """Stop the server :meth:`start_thread` started and wait for its thread to end."""
        thread, loop, stop = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stop is None:
            return
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        self._thread = None

    async def _serve(self, ready: concurrent.futures.Future[None]) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        try:
            await self.start()
        except BaseException as error:
            ready.set_exception(error)
            return
        ready.set_result(None)
        await self._stopping.wait()
        await self.stop()

    def _remove_tmpdir(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
