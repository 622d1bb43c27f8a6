"""`geartrain server`: the job server, with gearmand's command-line flags.

Flags keep gearmand's names and meanings so existing unit files and scripts
work.  Differences: with no ``-L`` it listens on loopback only (as Debian's
gearmand package configures it); ``-j`` has gearmand 2.0's meaning (-1 no
limit, the default; 0 no retries; N attempts); the log goes to stderr unless
``-l`` says otherwise.  Exit statuses are gearmand's: 0 after a normal stop,
1 for a bad flag (a one-line error) or a server that cannot start (a one-line
error on stderr and in the log); see docs/operations.md.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import os
import pwd
import resource
import socket
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..__about__ import __version__
from ..server.app import HttpListener, ServerApp, StartupError
from ..server.flags import ServerConfig
from ..server.logs import NOTICE, add_syslog, setup_logging
from ..server.network import is_loopback
from ..server.settings import Settings, SettingsError, load_settings
from ..store import Store
from .server_flags import build_parser, config_from_args, expand_config_file, fail

if TYPE_CHECKING:
    from aiohttp import web

    from ..cluster.backend import ClusterBackend
    from ..cluster.node import ClusterNode

log = logging.getLogger("geartrain.server")


def _open_store(
    ns: argparse.Namespace, user: pwd.struct_passwd | None
) -> tuple[Store | None, str, str]:
    """The store, its line for the start-up log, and its durability level.  With
    ``--user`` the default queue is in that user's state directory."""
    try:
        from ..store.options import (
            chosen_durability,
            default_state_dir,
            describe_store,
            store_from_args,
        )
    except ImportError:
        if ns.queue_type.lower() != "builtin":
            raise ValueError(f"queue type {ns.queue_type!r} is not available") from None
        return None, "memory only (-q builtin)", "memory"
    state_dir = default_state_dir(Path(user.pw_dir)) if user is not None else None
    store = store_from_args(ns, state_dir)
    return store, describe_store(ns, store), chosen_durability(ns).value


def _ssl_context(ns: argparse.Namespace) -> ssl.SSLContext | None:
    if not ns.ssl:
        return None
    cert = _tls_file(ns.ssl_certificate, "--ssl-certificate", "GEARMAND_SERVER_PEM")
    key = _tls_file(ns.ssl_key, "--ssl-key", "GEARMAND_SERVER_KEY")
    ca = _tls_file(ns.ssl_ca_file, "--ssl-ca-file", "GEARMAND_CA_CERTIFICATE")
    if cert is None:
        raise ValueError("--ssl needs --ssl-certificate (and --ssl-key unless the file has it)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_certificate(context, cert, key)
    if ca is not None:
        try:
            context.load_verify_locations(ca[1])
        except ssl.SSLError as error:
            fail(f"{ca[0]} {ca[1]}: no CA certificate in it ({error.reason}); give a PEM file")
    if ns.ssl_verify_clients:
        if ca is None:
            raise ValueError("--ssl-verify-clients needs --ssl-ca-file")
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _warn_tls_without_ssl(ns: argparse.Namespace) -> None:
    """TLS flags without ``--ssl`` leave connections in plaintext, as in gearmand: say so."""
    flags = ("--ssl-certificate", "--ssl-key", "--ssl-ca-file", "--ssl-verify-clients")
    given = [flag for flag in flags if getattr(ns, flag[2:].replace("-", "_"))]
    if given and not ns.ssl:
        log.warning(
            "%s without --ssl: ignored, connections are not encrypted; add --ssl to require TLS",
            ", ".join(given),
        )


def _tls_file(path: str | None, flag: str, variable: str) -> tuple[str, str] | None:
    """A TLS file from its flag or environment variable: (its name in messages, its path)."""
    name = flag if path else variable
    path = path or os.environ.get(variable)
    if not path:
        return None
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        fail(f"{name} {path}: cannot read it ({error.strerror}); give the path of a PEM file")
    return name, path


def _load_certificate(
    context: ssl.SSLContext, cert: tuple[str, str], key: tuple[str, str] | None
) -> None:
    """Load the certificate and key, or say which file holds what it should not."""
    try:
        context.load_cert_chain(cert[1], key[1] if key else None)
        return
    except ssl.SSLError as error:
        reason = error.reason or str(error)
    pem = Path(cert[1]).read_bytes()
    if b"CERTIFICATE-----" not in pem:
        held = "a private key" if b"PRIVATE KEY-----" in pem else "no PEM certificate"
        fail(f"{cert[0]} {cert[1]} holds {held}, not a certificate; give it the certificate")
    if key is not None:
        pem = Path(key[1]).read_bytes()
    holder = key or cert
    if b"PRIVATE KEY-----" not in pem:
        advice = "give the certificate's key" if key else "give it with --ssl-key"
        fail(f"{holder[0]} {holder[1]} holds no PEM private key; {advice}")
    fail(f"{holder[0]} {holder[1]} is not the certificate's key ({reason}); give that key")


def _daemonize() -> None:
    """Detach as gearmand -d does: fork, new session, fork, stdio to /dev/null.

    The working directory is kept, so relative paths given on the command line
    (pid file, log file, SQLite queue) mean what they meant to the caller."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


def _target_user(name: str) -> pwd.struct_passwd:
    """The user ``--user`` names; as in gearmand, only root may switch."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"--user {name}: no such user") from None
    if os.geteuid() != 0:
        raise ValueError(f"--user {name}: only root can switch users")
    return entry


def _switch_user(entry: pwd.struct_passwd) -> None:
    """Become ``--user`` once the ports are bound: the queue's files, its state
    directory and its fsyncs are then the user's, as with gearmand."""
    try:
        os.setgid(entry.pw_gid)
        os.initgroups(entry.pw_name, entry.pw_gid)
        os.setuid(entry.pw_uid)
    except OSError as error:
        raise StartupError(f"cannot switch to user {entry.pw_name}: {error.strerror}") from error


def _tune_allocator() -> None:
    """Let glibc keep freed megabytes instead of returning them to the kernel at once.

    Each large payload (say 1 MiB) is allocated and freed a few times per job; by
    default glibc gives such blocks back with munmap or a heap trim and takes them
    again on the next job, faulting every page in anew.  That churn cost more than
    half the server's CPU time for 1 MiB jobs.  Keeping up to 64 MiB of free heap
    ends it.  Environment variables (MALLOC_*_) still win; other C libraries are
    left alone.
    """
    if any(name.startswith("MALLOC_") for name in os.environ):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value
    mallopt(m_trim_threshold, 64 << 20)
    mallopt(m_top_pad, 16 << 20)


def _tune_gc() -> None:
    """Collect young objects less often, so queued jobs are not scanned again and again.

    Every queued job is a long-lived object, and CPython's collector, with its
    defaults, rescans all of them at each full collection, which it runs each time
    the long-lived objects have grown by a quarter: submitting 200,000 jobs in a
    burst spent 0.6 s in 5 full collections, the longest a 160 ms stall of every
    connection.  With generation 0 collected every 10,000 allocations instead of
    700, the same burst spends 0.2 s, never runs a full collection, pauses at most
    30 ms, and acknowledges 20% more jobs per second.  What is loaded at start
    (modules, classes) is frozen out of all collections.
    """
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _run_loop(app: ServerApp) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(app.run())
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(app.run())


def _prepare(
    ns: argparse.Namespace, parser: argparse.ArgumentParser, check_only: bool = False
) -> ServerApp:
    """Turn parsed flags into a server, or exit with a one-line error.

    With ``check_only`` (``--check-args``) the flags are checked but no file is
    read, as gearmand does: ``--ssl`` alone passes its check."""
    if ns.protocol == "":
        parser.error("--protocol needs a module name")
    if ns.protocol is not None and ns.protocol.lower() not in ("gear", "http"):
        parser.error(f"protocol module {ns.protocol!r} is not available")
    try:
        config = config_from_args(ns)
        settings = load_settings(ns.settings) if ns.settings else Settings()
        ssl_context = None if check_only else _ssl_context(ns)
        user = _target_user(ns.user) if ns.user and not check_only else None
        store, description, config.durability = _open_store(ns, user)
        cluster = _cluster(ns, store) if ns.cluster else None
    except SettingsError as error:
        fail(f"{error} (--settings); correct the file as docs/failures.md describes")
    except ValueError as error:
        if isinstance(error.__cause__, ImportError):  # a queue's driver is not installed
            fail(str(error))
        parser.error(str(error))
    if cluster is not None:
        store = None  # the cluster keeps its jobs in tables of its own
    app = ServerApp(
        config,
        store,
        ssl_context=ssl_context,
        store_description=description,
        settings=settings,
        cluster=cluster,
        http=_http_listeners(config),
    )
    if user is not None:
        app.on_bound = lambda: _switch_user(user)
    return app


def _http_listeners(config: ServerConfig) -> list[HttpListener]:
    """The operations listener (--console-port) on its own address, and gearmand's
    job gateway (--http-port) on the job port's, as gearmand has it."""
    listeners = []
    if config.metrics_port:

        def console(app: ServerApp) -> web.BaseRunner:
            from aiohttp import web

            from ..console import Console

            assert app.core is not None
            console = Console(
                app.core,
                app,
                config.http_token,
                config.metrics_public,
                config.console_stale_after,
            )
            return web.AppRunner(console.application(), access_log=None, handle_signals=False)

        def started(addresses: list[str]) -> None:
            if config.http_token is None and not all(map(is_loopback, addresses)):
                log.log(
                    NOTICE,
                    "The console answers other hosts only /healthz and /readyz%s; "
                    "give --http-token to let them read the rest",
                    ", /metrics" if config.metrics_public else "",
                )

        listeners.append(
            HttpListener(
                config.console_host,
                config.metrics_port,
                "--console-port",
                "Console",
                console,
                started,
            )
        )
    if config.http_port:

        def gateway(app: ServerApp) -> web.BaseRunner:
            from aiohttp import web

            from ..console import Gateway

            assert app.core is not None
            return web.ServerRunner(Gateway(app.core).server(), handle_signals=False)

        listeners.append(
            HttpListener(config.host, config.http_port, "--http-port", "HTTP gateway", gateway)
        )
    return listeners


def _cluster(ns: argparse.Namespace, store: Store | None) -> ClusterNode:
    # Checked by module name: the backend's driver may not be installed.
    module = type(store).__module__ if store is not None else ""
    if module not in ("geartrain.store.postgres", "geartrain.store.redis"):
        raise ValueError(
            f"--cluster needs -q postgres or -q redis (the {ns.queue_type} queue cannot be"
            " shared between servers)"
        )
    if not 1.0 <= ns.cluster_lease <= 3600:
        raise ValueError("--cluster-lease must be between 1 and 3600 seconds")

    from ..cluster.node import ClusterNode

    backend: ClusterBackend
    if module == "geartrain.store.redis":
        from ..cluster.redis import RedisCluster
        from ..store.redis import RedisStore

        assert isinstance(store, RedisStore)
        backend = RedisCluster(store)
    else:
        from ..cluster.postgres import PostgresCluster
        from ..store.postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        backend = PostgresCluster(store.conninfo, store.table)
    # The name tells the other members and the console where this member's clients reach it.
    name = f"{socket.gethostname()}:{ns.port} pid {os.getpid()}"
    return ClusterNode(backend, lease=ns.cluster_lease, name=name)


def _start_process(ns: argparse.Namespace, app: ServerApp) -> None:
    """Daemonize, set up logging and limits, and arrange the pid file."""
    if ns.daemon:
        _daemonize()
    try:
        app.log_target = setup_logging(ns.log_file, ns.verbose)
    except OSError as error:
        fail(
            f"--log-file {ns.log_file}: cannot open it ({error.strerror}); "
            "give a file in a writable directory, or stderr, or none"
        )
    if ns.syslog:
        add_syslog(os.environ.get("GEARTRAIN_SYSLOG_SOCKET") or "/dev/log")
    if ns.file_descriptors:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ns.file_descriptors, ns.file_descriptors))

    def listening() -> None:
        if ns.pid_file:
            # Written whole then renamed, so a reader never sees an empty file.
            pid_file = Path(ns.pid_file)
            partial = pid_file.with_name(pid_file.name + ".tmp")
            partial.write_text(f"{os.getpid()}\n")
            partial.replace(pid_file)

    app.on_listening = listening


def _named(error: StartupError | OSError, ns: argparse.Namespace) -> str:
    """Why the server stopped, in one line that says what to do when the queue's
    file is unusable (the app reports it without knowing the flag that gave it)."""
    cause = error.__cause__ if isinstance(error, StartupError) else None
    while cause is not None and not (isinstance(cause, OSError) and cause.filename):
        cause = cause.__cause__
    if isinstance(cause, OSError):  # naming a file: the SQLite queue's
        bad_dir = cause.errno in (errno.EEXIST, errno.ENOTDIR)
        reason = "a file, not a directory" if bad_dir else cause.strerror
        return (
            str(error).replace(str(cause), f"{cause.filename}: {reason}")
            + "; give --libsqlite3-db a path in a directory this user can create or write"
        )
    return str(error)


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    try:
        args = expand_config_file(list(argv))
    except OSError as error:
        parser.error(f"cannot read config file: {error}")
    ns = parser.parse_args(args)
    if ns.version:
        sys.stdout.write(f"geartrain {__version__} (gearmand-compatible job server)\n")
        return 0
    app = _prepare(ns, parser, check_only=ns.check_args)
    if ns.check_args:
        return 0
    try:
        _start_process(ns, app)
    except OSError as error:  # the fd limit
        parser.exit(1, f"geartrain server: {error}\n")
    _warn_tls_without_ssl(ns)
    _tune_allocator()
    _tune_gc()
    try:
        _run_loop(app)
    except (StartupError, OSError) as error:
        what = "Cannot start" if isinstance(error, StartupError) else "Cannot serve"
        message = _named(error, ns)
        log.critical("%s: %s", what, message)
        if ns.log_file != "stderr":
            sys.stderr.write(f"geartrain server: {message}\n")
        return 1
    finally:
        if ns.pid_file:
            Path(ns.pid_file).unlink(missing_ok=True)
    return 0
