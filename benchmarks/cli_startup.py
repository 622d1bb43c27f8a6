"""Time per call of the command-line tools beside Debian's (a measurement, not a test).

Shell scripts call the tools once per job, so a tool's start-up is most of what
a call costs there.  Against one server it starts (Debian's gearmand, or
geartrain with ``--server geartrain``), this times geartrain's tools and the C
tools with the same arguments, alternating call by call so both see the same
load: ``client -b``, foreground ``client -f`` (a C ``gearman -w`` answers),
``admin --status`` (the median of ``--repeat`` calls each), and a shell loop
of ``--loop`` background submissions.  ``python -c pass`` is the floor: the
interpreter's own start-up.

    python benchmarks/cli_startup.py [--server gearmand|geartrain] [--repeat 30] [--loop 100]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import servers

FOREGROUND = "cli_startup_fg"
BACKGROUND = "cli_startup_bg"


def geartrain_tool() -> list[str]:
    """The console script pip installed beside this interpreter, as users run it."""
    script = Path(sys.executable).with_name("geartrain")
    return [str(script)] if script.exists() else [sys.executable, "-m", "geartrain"]


def calls(port: int) -> dict[str, tuple[list[str], list[str]]]:
    """Each measured call: geartrain's command line and the C tool's."""
    ours, where = geartrain_tool(), ["-p", str(port)]
    return {
        "client -b": (
            [*ours, "client", *where, "-b", "-f", BACKGROUND, "x"],
            ["gearman", *where, "-b", "-f", BACKGROUND, "x"],
        ),
        "client -f": (
            [*ours, "client", *where, "-f", FOREGROUND, "x"],
            ["gearman", *where, "-f", FOREGROUND, "x"],
        ),
        "admin --status": (
            [*ours, "admin", *where, "--status"],
            ["gearadmin", *where, "--status"],
        ),
    }


def wait_for_worker(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = subprocess.run(
            ["gearadmin", "-p", str(port), "--status"], capture_output=True, text=True
        ).stdout
        if any(line.split("\t")[::3] == [FOREGROUND, "1"] for line in status.splitlines()):
            return
        time.sleep(0.05)
    raise RuntimeError("the worker did not register")


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def medians(argvs: list[list[str]], repeat: int) -> list[float]:
    """The median time of each command line, run in turn ``repeat`` times."""
    times: list[list[float]] = [[] for _ in argvs]
    for _ in range(repeat):
        for argv, samples in zip(argvs, times, strict=True):
            samples.append(timed(argv))
    return [statistics.median(samples) for samples in times]


def shell_loop(argv: list[str], count: int) -> float:
    command = " ".join(argv)
    script = f"for i in $(seq {count}); do {command} >/dev/null || exit 1; done"
    started = time.perf_counter()
    subprocess.run(["sh", "-c", script], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["gearmand", "geartrain"], default="gearmand")
    parser.add_argument("--repeat", type=int, default=30, help="calls of each tool (median)")
    parser.add_argument("--loop", type=int, default=100, help="calls in the shell loop")
    opts = parser.parse_args()
    for tool in ("gearman", "gearadmin"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: install Debian's gearman-tools")
    server = servers.start(opts.server)
    worker = subprocess.Popen(
        ["gearman", "-p", str(server.port), "-w", "-f", FOREGROUND],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_worker(server.port)
        print(f"{opts.server} on port {server.port}; {geartrain_tool()[0]}")
        (floor,) = medians([[sys.executable, "-c", "pass"]], opts.repeat)
        print(f"{'python -c pass':<26} {floor * 1000:>9.1f} ms")
        print(f"{'call (median)':<26} {'geartrain':>12} {'Debian':>12} {'ratio':>7}")
        for name, (ours, theirs) in calls(server.port).items():
            mine, c_tool = medians([ours, theirs], opts.repeat)
            print(
                f"{name:<26} {mine * 1000:>9.1f} ms {c_tool * 1000:>9.1f} ms {mine / c_tool:>6.1f}x"
            )
        ours, theirs = calls(server.port)["client -b"]
        mine, c_tool = shell_loop(ours, opts.loop), shell_loop(theirs, opts.loop)
        print(
            f"{f'{opts.loop} x client -b in sh':<26} {mine:>10.2f} s {c_tool:>10.2f} s "
            f"{mine / c_tool:>6.1f}x"
        )
    finally:
        worker.kill()
        worker.wait()
        server.stop()


if __name__ == "__main__":
    main()
