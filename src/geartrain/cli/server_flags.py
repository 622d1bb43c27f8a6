"""`geartrain server`'s command line: gearmand's flags (and geartrain's own), read
into a :class:`~geartrain.server.flags.ServerConfig`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from ..server.flags import DEFAULT_PORT, VERBOSE_LEVELS, ServerConfig, default_handle_prefix

__all__ = ["build_parser", "config_from_args", "expand_config_file", "fail"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One clear line (argparse prints the usage block too), and gearmand's
        # status 1 for any bad flag (argparse's own is 2).
        self.exit(1, f"geartrain server: {message} (see geartrain server --help)\n")


def fail(message: str) -> NoReturn:
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
        "--console-stale-after",
        type=float,
        default=ServerConfig.console_stale_after,
        metavar="SECONDS",
        help="the console flags a function whose oldest queued job waited longer "
        f"({ServerConfig.console_stale_after:g})",
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
        console_stale_after=ns.console_stale_after,
        http_port=_http_port(ns),
        allow_remote_shutdown=ns.allow_remote_shutdown,
        settings_file=ns.settings,
        tls_handshake_timeout=ns.ssl_handshake_timeout,
        busy_poll_us=ns.busy_poll,
    )


def expand_config_file(argv: list[str]) -> list[str]:
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
