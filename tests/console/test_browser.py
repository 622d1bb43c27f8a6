"""The console in a real headless Chromium (Debian's package, driven by Playwright),
with PHP workers and a PHP client connected.  Screenshots go to build/screenshots/."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from geartrain import sync
from otherhost import other_host

from .conftest import Console, php_submit

pytestmark = [pytest.mark.interop, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
HERE = Path(__file__).parent
SCREENSHOTS = HERE.parents[1] / "build" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_functions_workers_and_progress(console: Console, php_worker: Path, page: Any) -> None:
    handle = php_submit(console, "resize", b"cat.jpg 800x600")
    php_submit(console, "waiting", b"for nobody")
    page.goto(f"http://127.0.0.1:{console.port}/#/busy")
    workers = page.locator("table.workers tbody")
    workers.get_by_text("php-console-worker").wait_for()
    assert "resize" in workers.inner_text()
    workers.get_by_text("1/4 (25%)").wait_for()
    page.goto(f"http://127.0.0.1:{console.port}/#/jobs/running")
    running = page.locator("table.jobs tbody tr", has_text=handle)
    assert "cat.jpg 800x600" in running.inner_text()
    page.goto(f"http://127.0.0.1:{console.port}/#/functions")
    functions = page.locator("table.functions tbody")
    functions.get_by_text("waiting").wait_for()
    assert "resize" in functions.inner_text()
    page.locator("#live.on").wait_for()
    shoot(page, "console-desktop")
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    shoot(page, "console-phone")
    (php_worker / "release").touch()
    page.goto(f"http://127.0.0.1:{console.port}/#/jobs/running")
    page.locator("table.jobs tbody tr", has_text=handle).wait_for(state="detached")


def test_cancel_removes_a_queued_job(console: Console, page: Any) -> None:
    handle = php_submit(console, "nobody-works-this", b"payload")
    page.goto(f"http://127.0.0.1:{console.port}/#/jobs/queued")
    row = page.locator("table.jobs tbody tr", has_text=handle)
    row.get_by_role("button", name="Cancel").click()
    row.wait_for(state="detached")
    reply = console.get("/api/jobs?state=queued")
    assert reply["items"] == []


def test_pause_and_resume_a_function(console: Console, php_worker: Path, page: Any) -> None:
    page.goto(f"http://127.0.0.1:{console.port}/#/functions")
    row = page.locator("table.functions tbody tr", has_text="noop")
    row.get_by_role("button", name="Pause noop").click()
    row.get_by_text("paused", exact=True).wait_for()
    handle = php_submit(console, "noop", b"held")
    page.goto(f"http://127.0.0.1:{console.port}/#/jobs/queued?function=noop")
    page.locator("table.jobs tbody tr", has_text=handle).wait_for()
    shoot(page, "console-paused")
    assert console.get("/api/jobs?state=queued")["items"][0]["handle"] == handle
    page.goto(f"http://127.0.0.1:{console.port}/#/functions")
    row.get_by_role("button", name="Resume noop").click()
    row.get_by_role("button", name="Pause noop").wait_for()
    page.goto(f"http://127.0.0.1:{console.port}/#/jobs/queued?function=noop")
    page.locator("table.jobs tbody tr", has_text=handle).wait_for(state="detached")
    assert console.get("/api/status")["paused"] == []


def test_chart_moves_under_load(console: Console, php_worker: Path, page: Any) -> None:
    page.goto(f"http://127.0.0.1:{console.port}/")
    chart = page.locator("#chart")
    page.locator("#live.on").wait_for()
    before = int(chart.get_attribute("data-total") or 0)
    stop = threading.Event()

    def load() -> None:
        with sync.Client([console.server.address]) as client:
            while not stop.is_set():
                for _ in range(20):
                    client.submit_background("noop", b"x")
                time.sleep(0.05)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while int(chart.get_attribute("data-total") or 0) < before + 50:
            assert time.monotonic() < deadline, "the chart did not move"
            page.wait_for_timeout(250)
    finally:
        stop.set()
        thread.join(30)
    shoot(page, "console-under-load")


def test_failed_job_retried_from_the_console(console: Console, php_worker: Path, page: Any) -> None:
    handle = php_submit(console, "flaky", b"try me")
    page.goto(f"http://127.0.0.1:{console.port}/#/jobs/failed")
    row = page.locator("table.jobs tbody tr", has_text=handle)
    row.wait_for()
    shoot(page, "console-failed")
    (php_worker / "healed").touch()
    row.get_by_role("button", name="Retry").click()
    row.wait_for(state="detached")
    deadline = time.monotonic() + 20
    while not (php_worker / "ran").exists():
        assert time.monotonic() < deadline, "the retried job did not run"
        time.sleep(0.1)
    assert (php_worker / "ran").read_bytes() == b"try me"


def test_browser_on_another_host_gives_the_token_as_password(
    start_console: Callable[..., Console], playwright: Any, tmp_path: Path
) -> None:
    token = "s3cret-token"
    with other_host() as host:
        console = start_console("--console-listen", host.here, "--http-token", token)
        chromium = tmp_path / "chromium"  # Chromium on the other host
        chromium.write_text(f'#!/bin/sh\nexec ip netns exec {host.namespace} {CHROMIUM} "$@"\n')
        chromium.chmod(0o755)
        browser = playwright.chromium.launch(executable_path=str(chromium), args=ARGS)
        try:
            credentials = {"username": "ops", "password": token}
            context = browser.new_context(viewport=DESKTOP, http_credentials=credentials)
            page = context.new_page()
            page.set_default_timeout(20_000)
            handle = php_submit(console, "nobody-works-this", b"payload")
            page.goto(host.url(console.port, "/#/jobs/queued"))
            page.locator("#live.on").wait_for()  # the event stream carries the password too
            row = page.locator("table.jobs tbody tr", has_text=handle)
            row.get_by_role("button", name="Cancel").click()  # and so does an action
            row.wait_for(state="detached")
            shoot(page, "console-other-host")
        finally:
            browser.close()
