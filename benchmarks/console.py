"""Job-path throughput with the operations console open and watched, against without.

    python benchmarks/console.py [--runs 3] [--quick] [--chromium]

Each run starts geartrain three ways: without the console; with ``--console-port``
and nobody looking; and with the console watched — two live event streams, each
loading what the page loads on every tick (status, functions, workers, jobs), and
a Prometheus scrape every second.  ``--chromium`` opens the real page in Debian's
Chromium instead of the emulated viewers.  The load is the PHP benchmark's
foreground and pipelined scenarios (benchmarks/scenarios.py); gearmand runs the
same load in the same run for reference.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import servers
from scenarios import foreground, pipelined

PAGE_LOADS = (
    "/api/status",
    "/api/functions",
    "/api/workers",
    "/api/jobs?state=running&limit=100",
    "/api/jobs?state=queued&limit=100",
    "/api/jobs?state=scheduled&limit=100",
)


def _get(conn: http.client.HTTPConnection, path: str) -> None:
    conn.request("GET", path)
    conn.getresponse().read()


def _viewer(port: int, stop: threading.Event) -> None:
    """What one open console page does: an event stream; every tick, the page's loads."""
    events = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    api = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    events.request("GET", "/api/events")
    stream = events.getresponse()
    while not stop.is_set():
        line = stream.fp.readline()
        if not line:
            break
        if line.startswith(b"data: "):
            for path in PAGE_LOADS:
                _get(api, path)
    events.close()
    api.close()


def _scraper(port: int, stop: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.wait(1.0):
        _get(conn, "/metrics")
    conn.close()


@contextmanager
def watched(port: int, chromium: bool) -> Iterator[None]:
    stop = threading.Event()
    threads = [threading.Thread(target=_scraper, args=(port, stop))]
    if not chromium:
        threads += [threading.Thread(target=_viewer, args=(port, stop)) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        if chromium:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
                )
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator("#live.on").wait_for()
                yield
                browser.close()
        else:
            yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


def once(
    mode: str, scenario: Callable[..., dict[str, float]], quick: bool, chromium: bool
) -> float:
    if mode == "gearmand":
        server = servers.start("gearmand")
    else:
        flags = ["-q", "builtin"]
        port = servers.free_port()
        if mode != "no console":
            flags += ["--console-port", str(port)]
        server = servers.start("geartrain", flags)
    try:
        if mode == "console watched":
            with watched(port, chromium):
                return scenario(server, quick)["jobs_per_s"]
        return scenario(server, quick)["jobs_per_s"]
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller loads")
    parser.add_argument("--chromium", action="store_true", help="watch with a real browser")
    args = parser.parse_args()
    modes = ("no console", "console idle", "console watched", "gearmand")
    for name, scenario in (("foreground", foreground), ("pipelined", pipelined)):
        print(f"{name} jobs/s (median of {args.runs}, runs interleaved)")
        figures: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.runs):
            for mode in modes:
                figures[mode].append(once(mode, scenario, args.quick, args.chromium))
        base = statistics.median(figures["no console"])
        for mode in modes:
            median = statistics.median(figures[mode])
            spread = f"{min(figures[mode]):.0f}..{max(figures[mode]):.0f}"
            print(f"  {mode:16} {median:9.0f}  ({spread})  {median / base:5.2f}x no console")


if __name__ == "__main__":
    main()
