"""Job servers under test: Debian's gearmand and geartrain, on free loopback ports."""

from __future__ import annotations

import argparse
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

R = TypeVar("R")

GEARMAND = "/usr/sbin/gearmand"
"""Debian's gearmand; another build (e.g. one from gearmand's current source) is given by path."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def install(root: Path) -> str:
    """geartrain as a user installs it (`pip install .`) in build/bench-venv: its python."""
    venv = root / "build" / "bench-venv"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(root)], check=True)
    return str(venv / "bin" / "python")


def gearmand_version(path: str = GEARMAND) -> str:
    """The version a gearmand binary reports, e.g. "1.1.20" or "2.0.0-51-ge4f600b6"."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


@functools.cache
def _gearmand_help(path: str) -> str:
    return subprocess.run([path, "--help"], capture_output=True, text=True).stdout


def gearmand_lacks(path: str, flags: Sequence[str]) -> list[str]:
    """The long options among ``flags`` that a gearmand binary does not know: one
    built without a queue module (``--without-sqlite3``) has no ``--libsqlite3-db``."""
    names = [flag.split("=", 1)[0] for flag in flags if flag.startswith("--")]
    return [name for name in names if name not in _gearmand_help(path)]


def build_of(python: str) -> str:
    """Whether ``python``'s geartrain has the compiled server modules."""
    probe = "import geartrain.server.core as m; print(m.__file__.endswith('.so'))"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    return "compiled (mypyc)" if out.stdout.strip() == "True" else "pure Python"


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all CPUs), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def congestion_control() -> str:
    """The machine's default TCP congestion control, which every socket of a run
    gets: bbr paces even loopback sends (docs/performance.md), cubic does not."""
    path = Path("/proc/sys/net/ipv4/tcp_congestion_control")
    return path.read_text().strip() if path.exists() else ""


@dataclass
class CpuMeter:
    """The server's CPU and everything else's (the load's peers, on a quiet machine)
    over one load, per job: what the server costs, and what a server that cost
    nothing could at most reach with the same peers (the CPUs over their CPU per job)."""

    server: Server

    def __post_init__(self) -> None:
        self.server0 = self.server.cpu_seconds()
        self.machine0 = machine_busy_seconds()

    def per_job(self, jobs: int) -> dict[str, float]:
        server = self.server.cpu_seconds() - self.server0
        others = max(0.0, machine_busy_seconds() - self.machine0 - server)
        return {
            "cpu_us_per_job": server / jobs * 1e6,
            "others_cpu_us_per_job": others / jobs * 1e6,
            "free_server_ceiling_jobs_per_s": (os.cpu_count() or 1) * jobs / others
            if others
            else 0.0,
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running job server and the counters read from /proc."""

    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    tmpdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gt-bench-")))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server process (all threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"version\r\n")
                if s.recv(100).startswith(b"OK"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def start(
    kind: str,
    queue: list[str] | None = None,
    python: str = sys.executable,
    state_dir: Path | None = None,
    gearmand: str = GEARMAND,
) -> Server:
    """Start ``kind`` ("gearmand" or "geartrain") with the in-memory queue unless
    ``queue`` gives gearmand-style queue flags (both servers take the same ones); an
    empty ``queue`` starts the server with its own defaults.  geartrain's default
    queue file goes under ``state_dir`` (its $XDG_STATE_HOME), so runs never share it.
    ``gearmand`` is the binary started for kind "gearmand"."""
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="gt-bench-"))
    queue = ["-q", "builtin"] if queue is None else queue
    env = dict(os.environ, XDG_STATE_HOME=str(state_dir or tmp))
    if kind == "gearmand":
        argv = [
            gearmand,
            "--listen=127.0.0.1",
            f"--port={port}",
            "--log-file=none",
            f"--pid-file={tmp / 'gearmand.pid'}",
            *queue,
        ]
    else:
        argv = [python, "-m", "geartrain", "server", "-L", "127.0.0.1", "-p", str(port)]
        argv += ["-l", "none", *queue]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
    try:
        _wait_ready(port, proc)
    except BaseException:
        proc.kill()
        raise
    return Server(kind, port, proc, tmp)


@dataclass(frozen=True)
class Contender:
    """A server in a peer-timed comparison: its label, kind, flags and gearmand binary."""

    label: str
    kind: str
    flags: list[str]
    gearmand: str = GEARMAND


def payload_load_options(parser: argparse.ArgumentParser, jobs: int) -> None:
    """The options of the payload loads that their peers time or count
    (wakeups.py, waits.py): size, jobs per client, rounds and the servers."""
    parser.add_argument("--size", type=int, default=1 << 20)
    parser.add_argument("--jobs", type=int, default=jobs, help="per client")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gearmand", action="append", default=[])
    parser.add_argument("--geartrain-python", default=sys.executable)


def alternate(
    contenders: list[Contender], rounds: int, python: str, measure: Callable[[int], R]
) -> dict[str, list[R]]:
    """``measure(port)`` against each contender in turn, ``rounds`` times over, so that
    whatever drifts on the machine meets every server alike; results by label."""
    results: dict[str, list[R]] = {c.label: [] for c in contenders}
    for _ in range(rounds):
        for c in contenders:
            server = start(c.kind, c.flags, python=python, gearmand=c.gearmand)
            try:
                results[c.label].append(measure(server.port))
            finally:
                server.stop()
    return results
