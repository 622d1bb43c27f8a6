"""Server settings: gearmand's command-line flags as one dataclass."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from ..protocol import DEFAULT_MAX_LINE_SIZE, DEFAULT_MAX_PACKET_SIZE
from .busy_poll import DEFAULT_BUSY_POLL_US
from .limits import DEFAULT_MAX_INPUT_BYTES, DEFAULT_MAX_OUTPUT_BYTES

__all__ = ["DEFAULT_PORT", "VERBOSE_LEVELS", "ServerConfig", "default_handle_prefix"]

DEFAULT_PORT = 4730
"""IANA's port for Gearman, and gearmand's default."""

VERBOSE_LEVELS = ("FATAL", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
"""gearmand's --verbose names, most severe first."""


def default_handle_prefix() -> str:
    """gearmand's default job handle prefix, ``H:<nodename>``."""
    return "H:" + socket.gethostname()


@dataclass
class ServerConfig:
    """Everything `geartrain server` can be told; defaults are gearmand's unless noted."""

    host: str | None = "127.0.0.1"
    """Address to listen on; None means every address.  gearmand listens on all
    addresses by default; Debian's package and geartrain listen on loopback."""
    port: int = DEFAULT_PORT
    backlog: int = 32
    job_retries: int = -1
    """-1 no limit, 0 no retries, N attempts in all (gearmand 2.0's meaning)."""
    round_robin: bool = False
    worker_wakeup: int = 0
    """How many sleeping workers get a NOOP per queued job; 0 means all."""
    handle_prefix: str = field(default_factory=default_handle_prefix)
    exceptions: bool = False
    """Enable the `exceptions` option on every connection."""
    keepalive: bool = False
    keepalive_idle: int = -1
    keepalive_interval: int = -1
    keepalive_count: int = -1
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    max_line_size: int = DEFAULT_MAX_LINE_SIZE
    # Resource limits (docs/operations.md, "Limits"; the reasons are in .limits).
    max_connections: int = 0
    """0: the open-file limit less a reserve."""
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_jobs: int = 0
    """Jobs held in all (queued, scheduled, running); 0: no limit, as gearmand."""
    max_job_bytes: int = 0
    """Bytes of job data held in all; 0: no limit, as gearmand."""
    max_function_jobs: int = 0
    """Jobs held per function, where the settings file does not say; 0: no limit."""
    max_function_bytes: int = 0
    """Bytes of job data held per function, where the settings file does not say; 0: no limit."""
    max_idle_functions: int = 10_000
    """Functions with no worker, job or maxqueue kept (listed in `status`)."""
    verbose: str = "NOTICE"
    """gearmand defaults to ERROR; NOTICE shows the startup lines but nothing per job."""
    metrics_port: int = 0
    """The operations listener (console, /api/, /metrics, /healthz, /readyz) on this
    port; 0: off.  `--console-port` and `--metrics-port` set it."""
    console_host: str = "127.0.0.1"
    """The operations listener's address (`--console-listen`), whatever `host` is: it
    shows payloads and client ids, so it is opened to the network only on purpose."""
    http_token: str | None = None
    """Token the console needs (`--http-token`, $GEARTRAIN_HTTP_TOKEN) for actions, and
    from other hosts for reads too; without one, other hosts may only probe health."""
    metrics_public: bool = False
    """`/metrics` answers other hosts without the token (`--metrics-public`)."""
    console_stale_after: float = 300.0
    """Seconds a function's oldest queued job may wait before the console flags the
    function "stale" (`--console-stale-after`)."""
    http_port: int = 0
    """gearmand's HTTP job gateway (`--protocol=http --http-port N`) on `host`, as in
    gearmand: it offers what the job port offers; 0: off."""
    allow_remote_shutdown: bool = False
    """Accept the `shutdown` admin command from non-loopback peers."""
    durability: str = "memory"
    """What an acknowledged background job survives: crash, power or memory
    (see geartrain.store.durability); shown on the status page and /metrics."""
    settings_file: str | None = None
    """The TOML settings file (``--settings``): failure policies, schedules; reread on SIGHUP."""
    busy_poll_us: int = DEFAULT_BUSY_POLL_US
    """Microseconds the event loop may keep polling after work before it sleeps
    (see .busy_poll); 0: off."""
    tls_handshake_timeout: float = 10.0
    """Seconds a TLS peer has to complete its handshake (asyncio's default is 60)."""
