"""The console's pages in a real browser at a large queue: how long each takes to
show, and what the server spends while one stays open.

    python benchmarks/console_tab.py [--jobs 1000000] [--failed 3000] [--watch 20]

Fills a geartrain server as benchmarks/console_scale.py does (memory queue,
pipelined background jobs over ten functions, epoch jobs, a failed set), then
opens each page of the console in Debian's Chromium (Playwright): the time from
asking for the page to its list drawn, and the server's CPU (from /proc) over
``--watch`` seconds with that page open and nothing else asking.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import servers
from console_scale import fail, fill
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PAGES = [
    "#/",
    "#/busy",
    "#/functions",
    "#/function/fn3",
    "#/jobs/queued",
    "#/jobs/queued?offset=999950",
    "#/jobs/queued?function=fn3&priority=low",
    "#/jobs/queued?q=customer+976",
    "#/jobs/scheduled",
    "#/jobs/failed",
    "#/schedules",
    "#/audit",
]
DRAWN = "() => document.querySelector('main').dataset.drawn === '1'"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--failed", type=int, default=3000)
    parser.add_argument("--watch", type=float, default=20.0, help="seconds each page stays open")
    args = parser.parse_args()

    console = servers.free_port()
    server = servers.start("geartrain", ["-q", "builtin", "--console-port", str(console)])
    try:
        seconds = fill(server.port, args.jobs)
        print(f"filled {args.jobs:,} jobs in {seconds:.1f} s")
        asyncio.run(fail(f"127.0.0.1:{server.port}", server.port, args.failed, console))
        base = f"http://127.0.0.1:{console}/"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(base + "#/audit")
            page.wait_for_function(DRAWN)
            watch = f"{args.watch:.0f} s"
            print(f"page: ms to draw; server CPU with it open, % of one CPU over {watch}")
            for where in PAGES:
                path = where.replace("offset=999950", f"offset={max(0, args.jobs - 50)}")
                page.goto("about:blank")
                started = time.perf_counter()
                page.goto(base + path)
                page.wait_for_function(DRAWN, polling=10)
                drawn = (time.perf_counter() - started) * 1000
                page.wait_for_timeout(2000)  # the first polls settle
                cpu = server.cpu_seconds()
                page.wait_for_timeout(args.watch * 1000)
                share = 100 * (server.cpu_seconds() - cpu) / args.watch
                print(f"  {drawn:7.0f} ms  {share:5.2f} %  {path}")
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
