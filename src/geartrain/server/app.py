"""Running a server: listening sockets, the store, signals and shutdown.

Shutdown happens in these steps: stop listening; close every connection
(queued output is flushed first); wait for the store writer to finish what it
has been given; close the store.  A graceful stop (SIGUSR1 or
``shutdown graceful``) first stops listening and waits until no job is left,
while connected workers keep working.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from collections.abc import Callable

from ..store import Store
from .admin import AdminCommands
from .config import ServerConfig
from .core import JobServer
from .logs import NOTICE, LogTarget
from .network import Network, is_loopback
from .persistence import StoreWriter
from .settings import Settings, SettingsError, load_settings

__all__ = ["ServerApp"]

log = logging.getLogger("geartrain.server")


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
    ) -> None:
        self.config = config
        self.store = store
        self.log_target = log_target
        self.ssl_context = ssl_context
        self.store_description = store_description
        self.settings = settings
        self.core: JobServer | None = None
        self.network: Network | None = None
        self.writer: StoreWriter | None = None
        self.listeners: list[asyncio.AbstractServer] = []
        self._stop: asyncio.Future[None] | None = None
        self.on_listening: Callable[[], None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()  # TLS handshakes under way

    @property
    def verbose(self) -> str:
        return self.config.verbose.upper()

    async def run(self) -> None:
        """Serve until stopped by a signal or the `shutdown` admin command."""
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        core = self.core = JobServer(self.config, call_later=loop.call_later)
        core.on_shutdown = self.shutdown
        if self.settings is not None:
            core.apply_access(self.settings.access)
        admin = AdminCommands(core, lambda: self.verbose)
        self.network = Network(core, admin, self.config)
        try:
            await self._open_store(core)
            await self._listen(loop)
            await self._serve_metrics()
            self._install_signals(loop)
            if self.on_listening is not None:
                self.on_listening()
            await self._stop
        finally:
            await self._close()

    async def _open_store(self, core: JobServer) -> None:
        log.log(NOTICE, "Queue: %s", self.store_description)
        if self.store is None:
            return
        await self.store.open()
        jobs = await self.store.load()
        count = core.restore(jobs)
        if count:
            log.log(NOTICE, "Loaded %d queued job(s) from the store", count)
        self.writer = core.persister = StoreWriter(self.store, core)

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.network is not None
        config = self.config
        factory: Callable[[], asyncio.BaseProtocol] = self.network.protocol_factory
        if self.ssl_context is not None:
            from .handshake import TlsHandshake, TlsRefusals

            network, context, refusals = self.network, self.ssl_context, TlsRefusals()
            timeout, tasks = config.tls_handshake_timeout, self._handshakes

            def factory() -> asyncio.BaseProtocol:
                return TlsHandshake(network, context, timeout, refusals, tasks)

        server = await loop.create_server(
            factory,
            host=config.host,
            port=config.port,
            backlog=config.backlog,
            reuse_address=True,
        )
        self.listeners.append(server)
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

    async def _serve_metrics(self) -> None:
        if not self.config.metrics_port:
            return
        from .metrics import MetricsServer

        assert self.core is not None
        metrics = MetricsServer(self.core, self.writer, self.store_description)
        server = await asyncio.start_server(
            metrics.handle, self.config.host, self.config.metrics_port, reuse_address=True
        )
        self.listeners.append(server)
        addresses = ", ".join(_format_address(s.getsockname()) for s in server.sockets)
        log.log(NOTICE, "Metrics and dashboard on http://%s/", addresses)

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
        self._reload_settings()

    def _reopen_log(self) -> None:
        if self.log_target is not None:
            self.log_target.reopen()
        log.log(NOTICE, "Log file reopened")

    def _reload_settings(self) -> None:
        """Read the settings file again; a bad one changes nothing."""
        path = self.config.settings_path
        if path is None or self.core is None:
            return
        try:
            self.settings = load_settings(path)
        except SettingsError as error:
            log.error("%s; the previous settings stay", error)
            return
        self.core.apply_access(self.settings.access)
        log.log(NOTICE, "Settings reloaded from %s", path)

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
        for listener in self.listeners:
            listener.close()
        for task in list(self._handshakes):
            task.cancel()
        if self.network is not None:
            self.network.flush()
            self.network.close_all()
        if self.writer is not None:
            try:
                await asyncio.wait_for(self.writer.drain(), timeout=30)
            except (TimeoutError, Exception) as error:
                log.error("Store writes left unfinished at shutdown: %s", error)
            self.writer.close()
        if self.store is not None:
            await self.store.close()
        jobs = len(self.core.jobs) if self.core is not None else 0
        log.log(NOTICE, "Stopped with %d job(s) in the queue", jobs)


def _format_address(sockname: tuple[object, ...] | str) -> str:
    if isinstance(sockname, tuple):
        host, port = sockname[0], sockname[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(sockname)
