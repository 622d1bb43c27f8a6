"""`run.py --profile KEY`: one scenario against geartrain under py-spy.

Writes a speedscope profile (open it at https://www.speedscope.app) and a text
summary of where the server spends its busy time: the functions with the most
samples of their own, the idle event loop left out.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import servers
from scenarios import Scenario

RESULTS = Path(__file__).parent / "results"
IDLE = ("Runner.run", "run_until_complete", "run_forever", "select (selectors.py")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is needed: pip install py-spy")
    return found


def summarise(raw: Path, top: int = 25) -> str:
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frame = stack.split(";")[-1]
        if frame.startswith(IDLE):
            continue
        own[frame] += int(count)
        total += int(count)
    lines = [f"busy samples: {total}"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines)


def profile(scenario: Scenario, args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gt-bench-q-"))
    queue = [arg.format(tmp=tmp) for arg in scenario.queue]
    server = servers.start("geartrain", queue or None, args.geartrain_python)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"profile-{scenario.key}-{time.strftime('%Y%m%d-%H%M%S')}"
    recorders = [
        subprocess.Popen(
            [py_spy(), "record", "-p", str(server.pid), "-r", "250", "-f", fmt, "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fmt, out in (
            ("speedscope", stem.with_suffix(".speedscope.json")),
            ("raw", stem.with_suffix(".txt")),
        )
    ]
    time.sleep(1)
    try:
        print(scenario.run(server, args.quick))
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(30)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarise(stem.with_suffix(".txt"))
    stem.with_suffix(".summary.txt").write_text(summary + "\n")
    print(summary)
    print(f"\nprofile: {stem}.speedscope.json")
