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
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ..__about__ import __version__
from ..server.app import HttpListener, ServerApp, StartupError
from ..server.flags import DEFAULT_PORT, VERBOSE_LEVELS, ServerConfig, default_handle_prefix
from ..server.logs import NOTICE, add_syslog, setup_logging
from ..server.network import is_loopback
from ..server.settings import Settings, SettingsError, load_settings
from ..store import Store

if TYPE_CHECKING:
    from aiohttp import web

    from ..cluster.backend import ClusterBackend
    from ..cluster.node import ClusterNode

log = logging.getLogger("geartrain.server")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One clear line (argparse prints the usage block too), and gearmand's
        # status 1 for any bad flag (argparse's own is 2).
        self.exit(1, f"geartrain server: {message} (see geartrain server --help)\n")


def _fail(message: str) -> NoReturn:
    """A file or port the flags name is unusable: one line naming it, the cause
    and what to do; gearmand's status 1."""
    sys.stderr.write(f"geartrain server: {message}\n")
    raise SystemExit(1)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(text)
    return value


def _verbose(text: str) -> str:
    if text.upper() not in VERBOSE_LEVELS:
        raise ValueError(text)
    return text.upper()


def _retries(text: str) -> int:
    value = int(text)
    if not -1 <= value <= 255:
        raise ValueError(text)
    return value


_port.__name__ = "port"
_verbose.__name__ = "verbose level"
_retries.__name__ = "job-retries value (-1..255)"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="geartrain server",
        description="Gearman job server (gearmand-compatible flags).",
        allow_abbrev=False,
    )
    g = p.add_argument_group("general (as gearmand)")
    g.add_argument("-b", "--backlog", type=int, default=32, help="listen backlog (32)")
    g.add_argument("-d", "--daemon", action="store_true", help="detach and run in the background")
    g.add_argument("--exceptions", action="store_true", help="exceptions on for every connection")
    g.add_argument("-f", "--file-descriptors", type=int, help="raise the open-file limit to this")
    g.add_argument(
        "-j",
        "--job-retries",
        type=_retries,
        default=-1,
        help="attempts before a job whose worker dies is failed: -1 no limit (default), "
        "0 no retries, N attempts (gearmand 2.0's meaning)",
    )
    g.add_argument("--job-handle-prefix", help='job handle prefix (default "H:<hostname>")')
    g.add_argument("--hashtable-buckets", type=int, help="accepted for compatibility; unused")
    g.add_argument("--keepalive", action="store_true", help="enable TCP keepalive on connections")
    g.add_argument("--keepalive-idle", type=int, default=-1, help="TCP_KEEPIDLE seconds")
    g.add_argument("--keepalive-interval", type=int, default=-1, help="TCP_KEEPINTVL seconds")
    g.add_argument("--keepalive-count", type=int, default=-1, help="TCP_KEEPCNT probes")
    g.add_argument(
        "-l", "--log-file", default="stderr", help="log file path, 'stderr' (default) or 'none'"
    )
    g.add_argument(
        "-L",
        "--listen",
        help="address to listen on (default 127.0.0.1; use 0.0.0.0 or :: for remote peers)",
    )
    g.add_argument("-P", "--pid-file", help="write the process id to this file")
    g.add_argument("-r", "--protocol", help="extra protocol: http (the HTTP job gateway)")
    g.add_argument(
        "--http-port", type=_port, default=8080, help="port of --protocol=http's gateway (8080)"
    )
    g.add_argument("-R", "--round-robin", action="store_true", help="rotate a worker's functions")
    g.add_argument("--config-file", help="read more flags from this file (whitespace-separated)")
    g.add_argument("--syslog", action="store_true", help="also log to syslog")
    g.add_argument("--coredump", action="store_true", help="accepted for compatibility; unused")
    g.add_argument("-t", "--threads", type=int, help="accepted for compatibility (one event loop)")
    g.add_argument(
        "-u",
        "--user",
        help="switch to this user after binding, before opening the queue (needs root)",
    )
    g.add_argument(
        "--verbose", type=_verbose, default="NOTICE", help=f"{', '.join(VERBOSE_LEVELS)}"
    )
    g.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    g.add_argument(
        "-w", "--worker-wakeup", type=int, default=0, help="workers woken per job (0: all)"
    )
    g.add_argument("--check-args", action="store_true", help="check the flags and exit")
    gear = p.add_argument_group("gear protocol")
    gear.add_argument(
        "-p",
        "--port",
        type=_port,
        default=int(os.environ.get("GEARMAND_PORT") or DEFAULT_PORT),
        help="port (4730, or $GEARMAND_PORT)",
    )
    gear.add_argument("--ssl", action="store_true", help="require TLS on every connection")
    gear.add_argument("--ssl-ca-file", help="CA file ($GEARMAND_CA_CERTIFICATE)")
    gear.add_argument("--ssl-certificate", help="certificate ($GEARMAND_SERVER_PEM)")
    gear.add_argument("--ssl-key", help="private key ($GEARMAND_SERVER_KEY)")
    gear.add_argument(
        "--ssl-verify-clients",
        action="store_true",
        help="require client certificates signed by --ssl-ca-file (gearmand never checks them)",
    )
    ext = p.add_argument_group("geartrain")
    ext.add_argument(
        "--settings",
        metavar="FILE",
        help="TOML settings: retry policies, failed jobs, schedules, access (reread on SIGHUP)",
    )
    ext.add_argument(
        "--max-packet-size",
        type=int,
        default=ServerConfig.max_packet_size,
        help="refuse packets larger than this many bytes (64 MiB)",
    )
    _add_limit_arguments(ext)
    ext.add_argument(
        "--console-port",
        "--metrics-port",
        dest="metrics_port",
        type=_port,
        default=0,
        help="serve the web console, /api/, /metrics, /healthz and /readyz on this port",
    )
    ext.add_argument(
        "--console-listen",
        default=ServerConfig.console_host,
        metavar="ADDR",
        help=f"address of --console-port, whatever -L is ({ServerConfig.console_host})",
    )
    ext.add_argument(
        "--http-token",
        default=os.environ.get("GEARTRAIN_HTTP_TOKEN"),
        help="token the console needs for actions, and from other hosts for reads "
        "($GEARTRAIN_HTTP_TOKEN); without one only loopback may act or read",
    )
    ext.add_argument(
        "--metrics-public",
        action="store_true",
        help="serve /metrics to other hosts without the token",
    )
    ext.add_argument(
        "--busy-poll",
        type=_size,
        default=ServerConfig.busy_poll_us,
        metavar="USEC",
        help="keep polling this long after work before sleeping, when that pays "
        f"({ServerConfig.busy_poll_us}; 0: off)",
    )
    ext.add_argument(
        "--ssl-handshake-timeout",
        type=float,
        default=ServerConfig.tls_handshake_timeout,
        help="seconds a TLS peer has to finish its handshake (10)",
    )
    ext.add_argument(
        "--allow-remote-shutdown",
        action="store_true",
        help="accept the `shutdown` admin command from non-loopback peers",
    )
    ext.add_argument(
        "--cluster",
        action="store_true",
        help="share background jobs with every server on the same -q postgres database"
        " or -q redis server and prefix",
    )
    ext.add_argument(
        "--cluster-lease",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a dead server's jobs are taken over this long after it stops (10)",
    )
    _add_store_arguments(p)
    return p


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    try:
        from ..store.options import add_store_arguments
    except ImportError:  # no durable backends in this build
        parser.add_argument("-q", "--queue-type", default="builtin", help="builtin")
        return
    add_store_arguments(parser)


_LIMITS = (
    ("--max-line-size", "max_line_size", "longest admin line in bytes"),
    ("--max-connections", "max_connections", "open connections (0: the open-file limit less 32)"),
    ("--max-input-bytes", "max_input_bytes", "unhandled input across connections"),
    ("--max-output-bytes", "max_output_bytes", "output queued for a peer that does not read"),
    ("--max-jobs", "max_jobs", "jobs held in all (0: no limit)"),
    ("--max-job-bytes", "max_job_bytes", "bytes of job data held in all (0: no limit)"),
    ("--max-function-jobs", "max_function_jobs", "jobs held per function (0: no limit)"),
    ("--max-function-bytes", "max_function_bytes", "job bytes held per function (0: no limit)"),
    ("--max-idle-functions", "max_idle_functions", "unused functions kept in `status`"),
)
"""Resource limits (docs/operations.md, "Limits"): flag, ServerConfig field, help."""


def _add_limit_arguments(group: argparse._ArgumentGroup) -> None:
    for flag, field, text in _LIMITS:
        default = getattr(ServerConfig, field)
        group.add_argument(flag, type=_size, default=default, help=f"{text} ({default})")


def _size(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


_size.__name__ = "non-negative number"


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


def _http_port(ns: argparse.Namespace) -> int:
    """The HTTP gateway's port; 0 without ``-r http``."""
    return int(ns.http_port) if (ns.protocol or "").lower() == "http" else 0


def config_from_args(ns: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=ns.listen or "127.0.0.1",
        port=ns.port,
        backlog=ns.backlog,
        job_retries=ns.job_retries,
        round_robin=ns.round_robin,
        worker_wakeup=max(0, ns.worker_wakeup),
        handle_prefix=ns.job_handle_prefix or default_handle_prefix(),
        exceptions=ns.exceptions,
        keepalive=ns.keepalive,
        keepalive_idle=ns.keepalive_idle,
        keepalive_interval=ns.keepalive_interval,
        keepalive_count=ns.keepalive_count,
        max_packet_size=ns.max_packet_size,
        **{field: getattr(ns, field) for _flag, field, _text in _LIMITS},
        verbose=ns.verbose,
        metrics_port=ns.metrics_port,
        console_host=ns.console_listen,
        http_token=ns.http_token or None,
        metrics_public=ns.metrics_public,
        http_port=_http_port(ns),
        allow_remote_shutdown=ns.allow_remote_shutdown,
        settings_file=ns.settings,
        tls_handshake_timeout=ns.ssl_handshake_timeout,
        busy_poll_us=ns.busy_poll,
    )


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
            _fail(f"{ca[0]} {ca[1]}: no CA certificate in it ({error.reason}); give a PEM file")
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
        _fail(f"{name} {path}: cannot read it ({error.strerror}); give the path of a PEM file")
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
        _fail(f"{cert[0]} {cert[1]} holds {held}, not a certificate; give it the certificate")
    if key is not None:
        pem = Path(key[1]).read_bytes()
    holder = key or cert
    if b"PRIVATE KEY-----" not in pem:
        advice = "give the certificate's key" if key else "give it with --ssl-key"
        _fail(f"{holder[0]} {holder[1]} holds no PEM private key; {advice}")
    _fail(f"{holder[0]} {holder[1]} is not the certificate's key ({reason}); give that key")


def _expand_config_file(argv: list[str]) -> list[str]:
    """--config-file FILE: its whitespace-separated tokens come before the command line."""
    for i, arg in enumerate(argv):
        path = None
        if arg == "--config-file" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--config-file="):
            path = arg.split("=", 1)[1]
        if path is not None:
            return Path(path).read_text().split() + argv
    return argv


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
        _fail(f"{error} (--settings); correct the file as docs/failures.md describes")
    except ValueError as error:
        if isinstance(error.__cause__, ImportError):  # a queue's driver is not installed
            _fail(str(error))
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
            console = Console(app.core, app, config.http_token, config.metrics_public)
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
    return ClusterNode(backend, lease=ns.cluster_lease)


def _start_process(ns: argparse.Namespace, app: ServerApp) -> None:
    """Daemonize, set up logging and limits, and arrange the pid file."""
    if ns.daemon:
        _daemonize()
    try:
        app.log_target = setup_logging(ns.log_file, ns.verbose)
    except OSError as error:
        _fail(
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
        args = _expand_config_file(list(argv))
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
