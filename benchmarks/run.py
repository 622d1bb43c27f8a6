"""geartrain against gearmand, side by side: the same loads, alternating runs, medians.

    python benchmarks/run.py [--scenarios 1,2,3] [--runs 3] [--quick]
                             [--servers gearmand,geartrain] [--gearmand PATH ...]
                             [--geartrain-python PATH | --installed] [--profile KEY]
                             [--baseline-python PATH]

geartrain runs on this interpreter unless --geartrain-python names another, or
--installed installs it as the README does (`pip install .`, which compiles the
server's hot modules, into build/bench-venv) and runs that.  --baseline-python
names another build's interpreter (main's, before a change) to run beside it in
the same alternation: before and after, measured in the same minutes.

--gearmand names a gearmand binary (default Debian's /usr/sbin/gearmand); given
twice or more, every one runs in the same alternation (e.g. Debian's 1.1 and one
built from gearmand's current source), and the ratio is against the better of
them.  The table says which binaries and versions ran, and shows the server's CPU
per job (user + system, from /proc) beside each rate.

Prints a table, writes benchmarks/results/<time>.json and .png.  Needs Debian's
gearman-job-server and php-cli php-gearman (scripts/install-system-deps) and, for
the chart, matplotlib (pip install 'geartrain[bench]').
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import servers
from scenarios import SCENARIOS, Scenario

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Contender:
    """One server in the comparison: geartrain, or a gearmand binary."""

    label: str  # "geartrain", "gearmand 1.1.20", ...
    kind: str  # "geartrain" or "gearmand"
    path: str = servers.GEARMAND
    python: str = ""  # a geartrain other than --geartrain-python's (--baseline-python)


def contenders(args: argparse.Namespace) -> list[Contender]:
    chosen = []
    for kind in args.servers:
        if kind == "gearmand":
            for path in args.gearmand:
                chosen.append(Contender(f"gearmand {servers.gearmand_version(path)}", kind, path))
        else:
            chosen.append(Contender(kind, kind))
            if args.baseline_python:
                chosen.append(Contender("geartrain baseline", kind, python=args.baseline_python))
    return chosen


def run_once(
    scenario: Scenario, who: Contender, quick: bool, python: str, extra: list[str]
) -> dict[str, float]:
    tmp = Path(servers.tempfile.mkdtemp(prefix="gt-bench-q-"))
    flags = [*scenario.queue]
    if who.kind == "geartrain":
        flags += [*scenario.geartrain, *extra]
    args = [arg.format(tmp=tmp) for arg in flags]
    server = servers.start(who.kind, args, python, state_dir=tmp, gearmand=who.path)
    try:
        return scenario.run(server, quick)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def able(who: Contender, scenario: Scenario) -> bool:
    """Whether ``who`` can run ``scenario``: a gearmand built without its queue sits it out."""
    lacks = servers.gearmand_lacks(who.path, scenario.queue) if who.kind == "gearmand" else []
    if lacks:
        print(f"  {scenario.key} {who.label}: left out, it has no {', '.join(lacks)}")
    return not lacks


def headline(result: dict[str, float]) -> float:
    return next(iter(result.values()))


def ratio(scenario: Scenario, gearmand: float, geartrain: float) -> float:
    if scenario.higher_is_better:
        return geartrain / gearmand
    return gearmand / geartrain


def measure(args: argparse.Namespace, scenario: Scenario) -> dict[str, Any]:
    who = [c for c in args.contenders if able(c, scenario)]
    runs: dict[str, list[dict[str, float]]] = {c.label: [] for c in who}
    for i in range(args.runs):
        order = who if i % 2 == 0 else who[::-1]  # alternate who goes first
        for c in order:
            python = c.python or args.geartrain_python
            result = run_once(scenario, c, args.quick, python, args.geartrain_flags)
            runs[c.label].append(result)
            print(f"  {scenario.key} {c.label:16} run {i + 1}: {fmt(result)}", flush=True)
    medians = {
        label: {name: statistics.median(r[name] for r in results) for name in results[0]}
        for label, results in runs.items()
    }
    entry: dict[str, Any] = {
        "title": scenario.title,
        "unit": scenario.unit,
        "target": scenario.target,
        "higher_is_better": scenario.higher_is_better,
        "runs": runs,
        "median": medians,
    }
    gearmands = [label for label in medians if label.startswith("gearmand")]
    if gearmands and "geartrain" in medians:
        ours = headline(medians["geartrain"])
        ratios = {g: ratio(scenario, headline(medians[g]), ours) for g in gearmands}
        entry["ratios"] = ratios
        entry["ratio"] = min(ratios.values())  # against the better gearmand
        entry["against"] = min(ratios, key=ratios.__getitem__)
        entry["met"] = entry["ratio"] >= scenario.target
    return entry


def fmt(result: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:,.1f}" for k, v in result.items())


def table(report: dict[str, Any]) -> str:
    labels = report["servers"]
    cols = "".join(f" {label[:16]:>16}" for label in labels)
    lines = [f"{'':4} {'scenario':48} {'unit':9}{cols} {'ratio':>7} {'target':>7} met"]
    for key, entry in report["scenarios"].items():
        med = entry["median"]
        values = "".join(
            f" {headline(med[k]):16,.0f}" if k in med else f" {'-':>16}" for k in labels
        )
        ratio_text = f"{entry['ratio']:7.2f}" if "ratio" in entry else f"{'-':>7}"
        met = ("yes" if entry["met"] else "NO") if "met" in entry else ""
        lines.append(
            f"{key:4} {entry['title'][:48]:48} {entry['unit']:9}{values} {ratio_text}"
            f" {entry['target']:7.1f} {met}"
        )
        first = next(iter(med.values()), {})
        extras = [name for name in ("submit_jobs_per_s", "drain_jobs_per_s", "jobs_per_s")]
        extras = [n for n in extras if n in first and n != next(iter(first))]
        if first.keys() >= {"submit_jobs_per_s", "drain_jobs_per_s"}:
            for name in extras:
                label = {"jobs_per_s": "submit + drain"}.get(name, name.split("_")[0])
                lines.append(part_line(label, "jobs/s", name, med, labels))
        if "cpu_us_per_job" in first:
            lines.append(part_line("server CPU per job", "µs", "cpu_us_per_job", med, labels))
        if "others_cpu_us_per_job" in first:
            lines.append(
                part_line("peers' CPU per job", "µs", "others_cpu_us_per_job", med, labels)
            )
            lines.append(
                part_line(
                    "ceiling if the server cost nothing",
                    "jobs/s",
                    "free_server_ceiling_jobs_per_s",
                    med,
                    labels,
                )
            )
    lines.extend(against_memory(report))
    return "\n".join(lines)


def part_line(
    label: str, unit: str, name: str, med: dict[str, dict[str, float]], labels: list[str]
) -> str:
    got = "".join(f" {med[k][name]:16,.0f}" if k in med else f" {'-':>16}" for k in labels)
    return f"{'':4} {'  - ' + label:48} {unit:9}{got}"


# Rows whose geartrain figure, with default flags, should be within 5% of -q builtin.
DEFAULTS_VS_MEMORY = {"1d": "1", "2d": "2", "3d": "3"}


def against_memory(report: dict[str, Any]) -> list[str]:
    """geartrain with its defaults (durable queue) against itself with -q builtin."""
    scenarios = report["scenarios"]
    lines = []
    for defaults, memory in DEFAULTS_VS_MEMORY.items():
        pair = [scenarios.get(k, {}).get("median", {}).get("geartrain") for k in (defaults, memory)]
        if pair[0] and pair[1]:
            value = headline(pair[0]) / headline(pair[1])
            lines.append(
                f"geartrain {defaults} (defaults) / {memory} (-q builtin): {value:.2f}"
                f" (target >= 0.95 for foreground and pipelined)"
            )
    return [""] + lines if lines else []


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [(k, e) for k, e in report["scenarios"].items() if "ratio" in e]
    if not entries:
        return
    fig, ax = plt.subplots(figsize=(10, 4.5))
    keys = [f"{k}: {e['unit']}" for k, e in entries]
    ratios = [e["ratio"] for _, e in entries]
    colors = ["#2a9d8f" if e["met"] else "#e76f51" for _, e in entries]
    ax.bar(keys, ratios, color=colors)
    for i, (_, e) in enumerate(entries):
        ax.plot([i - 0.4, i + 0.4], [e["target"]] * 2, color="black", linewidth=1)
        ax.text(i, ratios[i], f"{ratios[i]:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("geartrain vs the better gearmand (>1: geartrain better)")
    versions = ", ".join(report["gearmand"].values())
    ax.set_title(f"geartrain vs gearmand {versions} — bars: ratio, lines: target")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(s.key for s in SCENARIOS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller loads, one run")
    parser.add_argument("--servers", default="gearmand,geartrain")
    parser.add_argument(
        "--gearmand",
        action="append",
        metavar="PATH",
        help=f"a gearmand binary (default {servers.GEARMAND}); repeat to run several",
    )
    parser.add_argument("--geartrain-python", default=sys.executable)
    parser.add_argument(
        "--baseline-python",
        metavar="PATH",
        help="another geartrain's interpreter (an earlier build) run in the same "
        "alternation as 'geartrain baseline'; ratios stay geartrain's against gearmand",
    )
    parser.add_argument(
        "--installed", action="store_true", help="run geartrain as `pip install .` installs it"
    )
    parser.add_argument(
        "--geartrain-flags", default="", help='more flags for geartrain, e.g. "--busy-poll=0"'
    )
    parser.add_argument("--profile", metavar="KEY", help="profile geartrain in one scenario")
    args = parser.parse_args()
    args.servers = args.servers.split(",")
    args.geartrain_flags = args.geartrain_flags.split()
    args.gearmand = args.gearmand or [servers.GEARMAND]
    args.contenders = contenders(args)
    if args.installed:
        args.geartrain_python = servers.install(Path(__file__).parent.parent)
    if args.quick:
        args.runs = 1
    chosen = [s for s in SCENARIOS if s.key in args.scenarios.split(",")]
    if args.profile:
        from profiling import profile

        profile(next(s for s in SCENARIOS if s.key == args.profile), args)
        return
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "tcp_congestion_control": servers.congestion_control(),
        },
        "gearmand": {c.path: c.label for c in args.contenders if c.kind == "gearmand"},
        "servers": [c.label for c in args.contenders],
        "geartrain_python": args.geartrain_python,
        "geartrain_build": servers.build_of(args.geartrain_python),
        "baseline_python": args.baseline_python,
        "geartrain_flags": args.geartrain_flags,
        "runs": args.runs,
        "quick": args.quick,
        "scenarios": {},
    }
    print(f"geartrain: {report['geartrain_build']} ({args.geartrain_python})", flush=True)
    print(f"TCP congestion control: {report['machine']['tcp_congestion_control']}", flush=True)
    for path, label in report["gearmand"].items():
        print(f"{label}: {path}", flush=True)
    for scenario in chosen:
        print(f"{scenario.key}: {scenario.title}", flush=True)
        report["scenarios"][scenario.key] = measure(args, scenario)
    print()
    print(table(report))
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / time.strftime("%Y%m%d-%H%M%S")
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
    try:
        chart(report, stem.with_suffix(".png"))
    except ImportError:
        print("(no chart: pip install matplotlib)")
    print(f"\nresults: {stem}.json")


if __name__ == "__main__":
    main()
