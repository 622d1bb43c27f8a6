"""Start-up time of the command-line tools beside Debian's (a measurement, not a test).

Shell scripts call ``gearman -b`` once per job, so a tool's start-up time is
most of what a submission costs there.  Prints, for ``geartrain client -b``
and Debian's ``gearman -b`` against the same gearmand: one call (the median of
``--repeat`` runs) and a shell loop of ``--loop`` calls.

    python benchmarks/cli_startup.py [--loop 100] [--repeat 7]
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


def tools() -> dict[str, list[str]]:
    geartrain = Path(sys.executable).with_name("geartrain")
    ours = [str(geartrain)] if geartrain.exists() else [sys.executable, "-m", "geartrain"]
    found = {"geartrain client -b": [*ours, "client"]}
    gearman = shutil.which("gearman")
    if gearman:
        found["gearman -b (Debian)"] = [gearman]
    return found


def one_call(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def shell_loop(argv: list[str], count: int) -> float:
    command = " ".join(argv)
    script = f"for i in $(seq {count}); do {command} >/dev/null || exit 1; done"
    started = time.perf_counter()
    subprocess.run(["sh", "-c", script], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", type=int, default=100, help="calls in the shell loop")
    parser.add_argument("--repeat", type=int, default=7, help="runs of the single call")
    opts = parser.parse_args()
    server = servers.start("gearmand")
    try:
        print(f"{'tool':<22} {'one call':>10} {f'{opts.loop} in a loop':>14} {'per call':>10}")
        for name, tool in tools().items():
            argv = [*tool, "-p", str(server.port), "-b", "-f", "cli_startup", "x"]
            single = one_call(argv, opts.repeat)
            loop = shell_loop(argv, opts.loop)
            print(
                f"{name:<22} {single * 1000:>8.1f}ms {loop:>13.2f}s "
                f"{loop / opts.loop * 1000:>8.1f}ms"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
