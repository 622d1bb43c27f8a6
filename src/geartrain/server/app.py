"""Running a server: listening sockets, the store, signals and shutdown.

Start-up binds the listening socket before it opens the queue: a second
server started on a taken port fails before it reads (or logs) another
server's jobs, and a server started as root with ``--user`` opens its queue as
that user.  Connections are accepted only once the queue is loaded.

Shutdown happens in these steps: stop listening; close every connection
(queued output is flushed first); wait for the store writer to finish what it
has been given; close the store.  A graceful stop (SIGUSR1 or
``shutdown graceful``) first stops listening and waits until no job is left,
while connected workers keep working.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import ssl
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ..store import Store, StoreError
from .admin import AdminCommands, SharedAdmin
from .core import JobServer
from .failed import FailedJobs
from .flags import ServerConfig
from .logs import NOTICE, LogTarget
from .memory import IdleTrimmer
from .network import Network, is_loopback
from .persistence import StoreWriter
from .requests import Requests
from .settings import Settings, SettingsError, load_settings

__all__ = ["HttpListener", "ServerApp", "Shared", "StartupError"]

if TYPE_CHECKING:
    from aiohttp import web

    from ..store.records import SharedJob, SharedQuery

log = logging.getLogger("geartrain.server")


class Shared(Protocol):
    """A cluster's shared store, where this server keeps its background jobs
    (:class:`geartrain.cluster.node.ClusterNode`)."""

    @property
    def description(self) -> str:
        """One line for the log: where the shared jobs are."""

    @property
    def primary(self) -> str | None:
        """``host:port`` of the store's server that takes the writes, once known."""

    @property
    def trouble(self) -> str:
        """Why the last call to the store on the heartbeat failed ("" if it did not)."""

    @property
    def answers(self) -> SharedAdmin:
        """The admin answers that come from the shared store."""

    async def live_members(self) -> int | None:
        """Members whose lease is valid, as the shared store shows them; None
        before this server has joined or if the store does not answer."""

    async def shared_queues(self) -> list[tuple[bytes, int, int]] | None:
        """(function, jobs, running) over the shared store; None as for
        :meth:`live_members`."""

    async def list_jobs(self, query: SharedQuery) -> tuple[int, bool, list[SharedJob]]:
        """A page of the shared jobs for the console: (total, exact, jobs); raises
        what a failing store raises, or TimeoutError at the store's deadline."""

    async def shared_job(self, handle: bytes, preview: int) -> SharedJob | None:
        """A shared job by its handle, as for :meth:`list_jobs`."""

    async def start(self, core: JobServer) -> None:
        """Join: from now on the core keeps its background jobs there."""

    async def close(self) -> None: ...


class HttpListener(NamedTuple):
    """An HTTP service beside the job port (the console, the gateway)."""

    host: str | None
    port: int
    flag: str
    """The flag that gave its port, for a one-line error if it is taken."""
    what: str
    """For the log: "Console", "HTTP gateway"."""
    runner: Callable[[ServerApp], web.BaseRunner]
    started: Callable[[list[str]], None] | None = None
    """Told the addresses it listens on."""


class StartupError(Exception):
    """The server cannot start: its message is one line for stderr and the log."""


class ServerApp:
    """One server process's life: start, serve, stop."""

    def __init__(
        self,
        config: ServerConfig,
        store: Store | None = None,
        *,
        log_target: LogTarget | None = None,
        ssl_context: ssl.SSLContext | None = None,
        store_description: str = "memory only (-q builtin)",
        settings: Settings | None = None,
        cluster: Shared | None = None,
        http: Sequence[HttpListener] = (),
        handle_signals: bool = True,
    ) -> None:
        self.config = config
        self.store = store
        self.log_target = log_target
        self.ssl_context = ssl_context
        self.store_description = store_description
        self.settings = settings or Settings()
        self.cluster = cluster
        self.http = http
        self.handle_signals = handle_signals  # off inside another program (geartrain.embedded)
        self.core: JobServer | None = None
        self.network: Network | None = None
        self.writer: StoreWriter | None = None
        self.listeners: list[asyncio.AbstractServer] = []
        self.trimmer: IdleTrimmer | None = None
        self._job_listener: asyncio.Server | None = None
        self._stop: asyncio.Future[None] | None = None
        self._store_opened = False
        self._started = False
        self.ready = False  # the stored queue is loaded and the job port listens (/readyz)
        self.loading = "starting"
        self._http: list[web.BaseRunner] = []  # the HTTP listeners (aiohttp, imported when used)
        self.on_listening: Callable[[], None] | None = None
        # Called once the ports are bound, before the store opens: where root is dropped.
        self.on_bound: Callable[[], None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()  # TLS handshakes under way

    @property
    def store_state(self) -> tuple[str, str]:
        """``ok``, ``full`` or ``failing`` and why (empty when ok): the writer's
        state, or a cluster's shared store as its heartbeat finds it."""
        if self.cluster is not None:
            trouble = self.cluster.trouble
            return ("failing", trouble) if trouble else ("ok", "")
        if self.writer is not None:
            return self.writer.state
        return ("ok", "")

    @property
    def store_primary(self) -> str | None:
        """``host:port`` of the store's server that takes the writes (several
        PostgreSQL hosts, Redis Sentinel: the primary now); None where unknown."""
        if self.cluster is not None:
            return self.cluster.primary
        primary: str | None = getattr(self.store, "primary", None)
        return primary

    @property
    def port(self) -> int:
        """The job port it listens on (the one the system chose for port 0)."""
        assert self._job_listener is not None, "not listening yet"
        return int(self._job_listener.sockets[0].getsockname()[1])

    @property
    def verbose(self) -> str:
        return self.config.verbose.upper()

    async def run(self) -> None:
        """Serve until stopped by a signal or the `shutdown` admin command."""
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        core = self.core = JobServer(self.config, call_later=loop.call_later)
        core.on_shutdown = self.shutdown
        core.apply_settings(self.settings)
        shared = self.cluster.answers if self.cluster is not None else None
        admin = AdminCommands(core, lambda: self.verbose, shared)
        self.network = Network(Requests(core), admin, self.config)
        try:
            await self._bind(loop)
            for listener in self.http:  # before the store, so /readyz answers while it loads
                await self._serve_app(listener)
            if self.on_bound is not None:
                self.on_bound()
            if self.cluster is not None:
                log.log(NOTICE, "Queue: %s", self.cluster.description)
                await self.cluster.start(core)
            else:
                await self._open_store(core)
            await self._start_serving()
            self.ready, self.loading = True, "done"
            self.trimmer = IdleTrimmer(self.network)
            self.trimmer.start(loop)
            if self.handle_signals:
                self._install_signals(loop)
            self._started = True
            if self.on_listening is not None:
                self.on_listening()
            await self._stop
        finally:
            await self._close()

    async def _open_store(self, core: JobServer) -> None:
        log.log(NOTICE, "Queue: %s", self.store_description)
        if self.store is None:
            return
        try:
            self.loading = "opening the store"
            await self.store.open()
            self._store_opened = True
            self.loading = "loading the stored queue"
            jobs = await self.store.load()
        except Exception as error:  # each driver has its own errors; all mean the same here
            # A StoreError names its store already.
            where = "" if isinstance(error, StoreError) else f"{self.store_description}: "
            raise StartupError(f"cannot open the queue: {where}{error}") from error
        self.loading = f"restoring {len(jobs)} stored job(s)"
        gather = self.config.durability == "power"
        self.writer = writer = StoreWriter(self.store, core, gather=gather)
        if self.network is not None:
            writer.at_turn_end = self.network.before_flush
        count = core.restore(writer.restorable(jobs))
        if count:
            log.log(NOTICE, "Loaded %d queued job(s) from the store", count)
        core.keeper = writer
        await self._load_failed(core, writer)
        await self._load_paused(core, self.store)
        await self._load_results(core, writer)

    @staticmethod
    async def _load_paused(core: JobServer, store: Store) -> None:
        """Functions paused before the restart stay paused; changes are kept there."""
        paused, _resumed = core.pauses.replace(await store.load_paused())
        core.pause_store = store
        if paused:
            names = ", ".join(name.decode(errors="replace") for name in paused)
            log.log(NOTICE, "Functions paused (as before the restart): %s", names)

    async def _load_failed(self, core: JobServer, writer: StoreWriter) -> None:
        """The failed-job set from the store, and the store as its home from now on."""
        assert self.store is not None
        failed = FailedJobs(core.resubmit, core.clock)
        failed.persist = writer.failed_changed
        core.use_failed(failed)  # bounded before it loads (the server serves nothing yet)
        records = await self.store.load_failed()
        for record in records:
            core.handles.saw(record.handle)
        failed.load(records)
        if records:
            log.log(NOTICE, "Loaded %d failed job(s) from the store", len(failed))

    async def _load_results(self, core: JobServer, writer: StoreWriter) -> None:
        """The kept results from the store, and the store as their home from now on."""
        assert self.store is not None
        results = core.results
        results.persist = writer.results_changed
        records = await self.store.load_results()
        results.load(records)
        if records:
            log.log(NOTICE, "Loaded %d kept result(s) from the store", len(results))

    async def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take the port; connections wait until `_start_serving`."""
        assert self.network is not None
        config = self.config
        factory: Callable[[], asyncio.BaseProtocol] = self.network.protocol_factory
        if self.ssl_context is not None:
            from .handshake import TlsHandshake, TlsRefusals

            network, context, refusals = self.network, self.ssl_context, TlsRefusals()
            timeout, tasks = config.tls_handshake_timeout, self._handshakes

            def factory() -> asyncio.BaseProtocol:
                return TlsHandshake(network, context, timeout, refusals, tasks)

        try:
            server = await loop.create_server(
                factory,
                host=config.host,
                port=config.port,
                backlog=config.backlog,
                reuse_address=True,
                start_serving=False,
            )
        except OSError as error:
            raise self._cannot_listen(error) from error
        self.listeners.append(server)
        self._job_listener = server

    def _cannot_listen(self, error: OSError) -> StartupError:
        # asyncio's own text repeats the address; say it once
        reason = os.strerror(error.errno) if error.errno else str(error)
        return StartupError(f"cannot listen on {self.config.host}:{self.config.port}: {reason}")

    async def _start_serving(self) -> None:
        config = self.config
        server = self._job_listener
        assert server is not None
        try:
            await server.start_serving()
            if any(s is None or s.fileno() < 0 for s in server.sockets):
                # uvloop closes a listener whose listen() failed, without raising; listen()
                # fails only when another socket took the port after our bind.
                raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
        except OSError as error:
            raise self._cannot_listen(error) from error
        addresses = ", ".join(_format_address(s.getsockname()) for s in server.sockets)
        log.log(NOTICE, "geartrain listening on %s (pid %d)", addresses, os.getpid())
        if config.host is not None and all(
            is_loopback(str(s.getsockname()[0])) for s in server.sockets
        ):
            log.log(
                NOTICE,
                "Only local clients and workers can connect; "
                "start with -L 0.0.0.0 (or -L ::) to accept remote ones",
            )

    async def _serve_app(self, listener: HttpListener) -> None:
        from aiohttp import web

        runner = listener.runner(self)
        await runner.setup()
        self._http.append(runner)
        site = web.TCPSite(runner, listener.host, listener.port, reuse_address=True)
        try:
            await site.start()
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise StartupError(
                f"{listener.flag} {listener.port}: cannot listen ({reason}); "
                "stop what holds the port or choose another"
            ) from error
        names = site.name.removeprefix("http://")
        log.log(NOTICE, "%s on http://%s/", listener.what, names)
        if listener.started is not None:
            listener.started([str(address[0]) for address in runner.addresses])

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        handlers: dict[int, Callable[[], None]] = {
            signal.SIGTERM: lambda: self.shutdown(False),
            signal.SIGINT: lambda: self.shutdown(False),
            signal.SIGUSR1: lambda: self.shutdown(True),
            signal.SIGHUP: self._hangup,
        }
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
        # Writes to a closed socket must fail with an error, not kill the process.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _hangup(self) -> None:
        self._reopen_log()
        self.reload_settings()

    def reload_settings(self) -> None:
        """SIGHUP: reread the settings file; a bad file keeps the settings in force."""
        path = self.config.settings_file
        if not path or self.core is None:
            return
        try:
            self.settings = load_settings(path)
        except SettingsError as error:
            log.error("%s; keeping the previous settings", error)
            return
        self.core.apply_settings(self.settings)
        log.log(NOTICE, "Settings reloaded from %s", path)

    def _reopen_log(self) -> None:
        if self.log_target is not None:
            self.log_target.reopen()
        log.log(NOTICE, "Log file reopened")

    def shutdown(self, graceful: bool) -> None:
        """Stop now, or (graceful) stop listening and stop once no job is left."""
        if self._stop is None or self._stop.done():
            return
        if not graceful:
            log.log(NOTICE, "Shutting down")
            self._stop.set_result(None)
            return
        for listener in self.listeners:
            listener.close()
        assert self.core is not None
        log.log(NOTICE, "Graceful shutdown: %d job(s) left", len(self.core.jobs))
        if not self.core.jobs:
            self._stop.set_result(None)
        else:
            self.core.on_idle = lambda: self.shutdown(False)

    async def _close(self) -> None:
        if self.trimmer is not None:
            self.trimmer.stop()
        for listener in self.listeners:
            listener.close()
        if self.core is not None:
            self.core.recurring.close()
            self.core.results.close()
        for runner in self._http:
            await runner.cleanup()
        for task in list(self._handshakes):
            task.cancel()
        if self.network is not None:
            self.network.flush()
            self.network.close_all()
        if self.cluster is not None:
            await self.cluster.close()
        if self.writer is not None:
            try:
                await asyncio.wait_for(self.writer.drain(), timeout=30)
            except (TimeoutError, Exception) as error:
                log.error("Store writes left unfinished at shutdown: %s", error)
            self.writer.close()
        if self.store is not None and self._store_opened:
            await self.store.close()
        if self._started:  # a failed start has nothing to report but its error
            jobs = len(self.core.jobs) if self.core is not None else 0
            log.log(NOTICE, "Stopped with %d job(s) in the queue", jobs)


def _format_address(sockname: tuple[object, ...] | str) -> str:
    if isinstance(sockname, tuple):
        host, port = sockname[0], sockname[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(sockname)
