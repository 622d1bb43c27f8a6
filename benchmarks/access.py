"""Throughput with access rules of 100 patterns against none, in one run.

    python benchmarks/access.py [--jobs 20000] [--runs 3]

Two geartrain servers, one without a settings file and one whose loopback
identity has 100 submit, work and status patterns (the functions used are
matched by the last ones, and restricted status queries make every handle
carry a random suffix): the worst case of the rules' per-request checks.  The
load is pipelined background submissions (one connection, 1000 in flight) and
foreground round trips (4 clients, 2 echo workers).  Prints the median of
``--runs`` runs of each, and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pyload
import servers


def rules(patterns: int = 100) -> str:
    names = [f"service{i}.*" for i in range(patterns - 2)] + ["mem", "lat"]
    listed = ", ".join(f'"{n}"' for n in names)
    return (
        '[access.anonymous]\n\n[access.identities.local]\nnetworks = ["127.0.0.0/8"]\n'
        f'submit = [{listed}]\nwork = [{listed}]\nstatus = [{listed}]\nadmin = ["*"]\n'
    )


def once(settings: Path | None, jobs: int) -> tuple[float, float]:
    flags = ["-q", "builtin"] + ([f"--settings={settings}"] if settings else [])
    server = servers.start("geartrain", flags)
    try:
        background = jobs / pyload.fill(server.port, jobs=jobs)
        done, seconds = pyload.foreground(server.port, clients=4, jobs=jobs // 8, size=100)
        assert done == 4 * (jobs // 8), "foreground jobs lost"
        return background, done / seconds
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings = Path(tempfile.mkdtemp(prefix="gt-bench-")) / "settings.toml"
    settings.write_text(rules())
    results: dict[str, list[tuple[float, float]]] = {"none": [], "100 patterns": []}
    for _ in range(args.runs):  # interleaved, so drift in machine load hits both alike
        results["none"].append(once(None, args.jobs))
        results["100 patterns"].append(once(settings, args.jobs))
    medians = {
        name: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        for name, runs in results.items()
    }
    for index, load in enumerate(("background submit", "foreground round trip")):
        none, rules_ = medians["none"][index], medians["100 patterns"][index]
        print(
            f"{load:<22} jobs/s: no rules {none:9.0f}   100 patterns {rules_:9.0f}"
            f"   ratio {rules_ / none:.2f}"
        )


if __name__ == "__main__":
    main()
