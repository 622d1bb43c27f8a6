"""The soak (scripts/soak.py), short: mixed Python and PHP load on a durable queue,
workers and the server SIGKILLed at random (and, on Redis, the store cut off),
then the checker: no acknowledged job lost, duplicates only at kills, no steady
growth of RSS or open fds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REDIS

SOAK = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"


@pytest.mark.slow
@pytest.mark.interop
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("queue", "minutes"), [("sqlite", 2.0), ("redis", 1.0)], ids=["sqlite", "redis"]
)
def test_soak_loses_nothing(queue: str, minutes: float, tmp_path: Path) -> None:
    report_path = tmp_path / "soak.json"
    # A fault every 3 s on average in the first 70%, so a short run still has a
    # few server kills and several worker kills.
    argv = [sys.executable, str(SOAK), "--minutes", str(minutes), "--fault-every", "3"]
    argv += ["--server-share", "0.4", "--report", str(report_path), "--queue", queue]
    argv += ["--redis", f"{REDIS['host']}:{REDIS['port']}"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=540)
    report = json.loads(report_path.read_text())
    assert result.returncode == 0, (report["failures"], result.stdout[-2000:])
    counts = report["counts"]
    assert report["acknowledged"] > 200
    assert counts["php_bg_acked"] > 0 and counts["php_fg_ok"] > 0 and counts["fg_ok"] > 0
    assert counts["server_kills"] + counts["worker_kills"] + counts["store_outages"] >= 3
    assert report["ran"] == report["acknowledged"]
