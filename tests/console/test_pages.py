"""The console's pages in Debian's Chromium (driven by Playwright), at desktop and phone
sizes, against one real server with PHP and Python workers, some of them failing, a
backlog nobody works, retries waiting and a recurring schedule.

Each test uses functions of its own, so the shared server's state of one test does not
steer another.  Screenshots go to a pytest temporary directory (printed)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from geartrain import sync
from geartrain.priority import Priority
from serverproc import ServerProc, free_port
from serverproc import start as start_server_process

from .conftest import Console
from .test_browser import ARGS, CHROMIUM, DESKTOP, HERE, PHONE

pytestmark = [pytest.mark.interop, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.sync_api")

SETTINGS = """
[functions."py_retry*"]
attempts = 5
retry_on = ["exception"]
backoff_base = 3600.0
jitter = 0.5

[[schedules]]
name = "every-minute-report"
cron = "* * * * *"
function = "report"
payload = "tick"
"""
BACKLOG = {Priority.HIGH: 9, Priority.NORMAL: 100, Priority.LOW: 11}
PAGES = [
    "#/",
    "#/busy",
    "#/functions",
    "#/jobs/queued",
    "#/jobs/running",
    "#/jobs/scheduled",
    "#/jobs/retrying",
    "#/jobs/failed",
    "#/schedules",
    "#/audit",
    "#/cluster",
]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


class Scene:
    """The server, its workers and what was submitted."""

    def __init__(self, console: Console, php_dir: Path) -> None:
        self.console = console
        self.php_dir = php_dir
        self.url = f"http://127.0.0.1:{console.port}/"
        self.client = sync.Client([console.server.address])

    def submit(self, function: str, data: bytes = b"x", **kwargs: Any) -> str:
        return self.client.submit_background(function, data, **kwargs).decode()

    def jobs(self, state: str, **query: str) -> list[dict[str, Any]]:
        """The first 500 jobs of ``state`` the API lists."""
        params = "".join(f"&{k}={v}" for k, v in query.items())
        return list(self.console.get(f"/api/jobs?state={state}&limit=500{params}")["items"])


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    here = tmp_path_factory.mktemp("scene")
    settings = here / "settings.toml"
    settings.write_text(SETTINGS)
    port = free_port()
    server: ServerProc = start_server_process(
        "geartrain", ["--console-port", str(port), "--settings", str(settings)]
    )
    console = Console(server, port)
    php = subprocess.Popen(
        ["php", str(HERE / "php" / "worker.php"), "127.0.0.1", str(server.port), here]
    )
    worker = sync.Worker([server.address], client_id="py-console-worker")

    def disk_full(job: Any) -> bytes:
        raise OSError("disk full on /var/spool/out")

    worker.register("py_fail", disk_full)
    for size in ("desktop", "phone"):
        worker.register(f"py_retry_{size}", disk_full)
    worker.register("py_ok", lambda job: b"done")
    worker.start()
    scene = Scene(console, here)
    try:
        for priority, n in BACKLOG.items():
            for i in range(n):
                scene.submit("backlog", f"order {priority.value} {i}".encode(), priority=priority)
        scene.submit("backlog", b"the one with a key", unique=b"order-4711")
        yield scene
    finally:
        scene.client.close()
        (here / "release").touch()
        (here / "stop").touch()
        worker.stop(graceful=False)
        try:
            php.wait(timeout=15)
        except subprocess.TimeoutExpired:
            php.kill()
            php.wait()
        server.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("screenshots")
    print(f"\nconsole screenshots: {where}")
    return where


@pytest.fixture(params=["desktop", "phone"])
def size(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def page(browser: Any, size: str) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP if size == "desktop" else PHONE)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()
    assert not errors, errors


def toast(page: Any, pattern: str) -> str:
    """Waits for the toast to say ``pattern`` (a regular expression); returns its text."""
    page.locator("#toast.show").filter(has_text=re.compile(pattern)).wait_for()
    return str(page.locator("#toast").inner_text())


def open_page(page: Any, scene: Scene, where: str) -> None:
    page.goto(scene.url + where)
    page.locator("main h1").wait_for()
    page.wait_for_function("() => document.querySelector('main').dataset.drawn === '1'")


def test_every_page_fits_and_is_shot(scene: Scene, page: Any, size: str, shots: Path) -> None:
    scene.submit("flaky", b"a php failure")
    wait_until(lambda: any(f["function"] == "flaky" for f in scene.jobs("failed")), "no failure")
    for where in PAGES:
        open_page(page, scene, where)
        page.locator("main .card").first.wait_for()
        page.wait_for_timeout(300)
        # Nothing runs off the right edge: at phone width the lists are cards.
        width = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1], (where, size, width)
        name = where.strip("#/").replace("/", "-") or "dashboard"
        page.screenshot(path=str(shots / f"{name}-{size}.png"), full_page=True)


def test_dashboard_counts_chart_flags_and_server_box(scene: Scene, page: Any) -> None:
    open_page(page, scene, "#/")
    page.locator("#live.on").wait_for()
    queued = sum(BACKLOG.values()) + 1
    page.wait_for_function(
        "n => Number(document.getElementById('c-queued').textContent.replace(/,/g, '')) >= n",
        arg=queued,
    )
    # The chart's words name the span its axis really covers (one point a second).
    span = int(page.locator("#chart").get_attribute("data-span") or 0)
    assert span == 300
    assert page.locator("#chart-title").inner_text() == "Jobs per second, last 5 minutes"
    assert "5 minutes" in (page.locator("#chart").get_attribute("aria-label") or "")
    # A function with queued jobs and no worker is flagged.
    flagged = page.locator("#flags tr", has_text="backlog")
    flagged.get_by_text("no workers").wait_for()
    # The queue description stays on one line however long it is.
    page.locator("#facts div.wide dd").wait_for()
    heights = page.evaluate(
        "() => [document.querySelector('#facts div.wide dd').getBoundingClientRect().height,"
        " document.querySelector('#facts dt').getBoundingClientRect().height]"
    )
    assert heights[0] <= heights[1] * 1.5, heights


def test_a_hidden_tab_lets_go_of_the_server(scene: Scene, page: Any) -> None:
    open_page(page, scene, "#/")
    page.locator("#live.on").wait_for()
    streams = "() => performance.getEntriesByName(location.origin + '/api/events').length"
    opened = page.evaluate(streams)
    hide = "h => { Object.defineProperty(document, 'hidden', {value: h, configurable: true});"
    hide += " document.dispatchEvent(new Event('visibilitychange')); }"
    page.evaluate(hide, True)
    page.locator("#live", has_text="paused").wait_for()
    page.evaluate(hide, False)
    page.locator("#live.on").wait_for()
    page.wait_for_function(f"n => ({streams})() > n", arg=opened)


def test_busy_page_shows_what_each_worker_runs(scene: Scene, page: Any) -> None:
    handle = scene.submit("resize", b"cat.jpg 800x600")
    open_page(page, scene, "#/busy")
    row = page.locator("table.workers tr", has_text="php-console-worker")
    row.get_by_text(handle).wait_for()
    assert "1/4 (25%)" in row.inner_text()
    assert page.locator("table.workers tr", has_text="py-console-worker").count() == 1
    # The running list: who runs it, its progress, and for how long.
    open_page(page, scene, "#/jobs/running?function=resize")
    running = page.locator("table.jobs tbody tr", has_text=handle)
    assert "php-console-worker" in running.inner_text() and "1/4 (25%)" in running.inner_text()
    assert re.search(r"\d s", running.locator("td").nth(4).inner_text())
    (scene.php_dir / "release").touch()
    running.wait_for(state="detached")
    (scene.php_dir / "release").unlink()


def test_functions_page_counts_by_priority(scene: Scene, page: Any, size: str) -> None:
    open_page(page, scene, "#/functions")
    row = page.locator("table.functions tbody tr", has_text="backlog")
    row.wait_for()
    cells = row.locator("td").evaluate_all("tds => tds.map(td => td.textContent)")
    assert cells[1:5] == ["9", "101", "11", "121"], cells
    # A phone's card shows the total and leaves the split by priority out.
    assert row.locator("td").nth(1).is_visible() == (size == "desktop")
    assert row.locator("td").nth(4).is_visible()
    assert "no workers" in cells[0]
    row.get_by_role("link", name="121 queued backlog jobs").click()
    page.wait_for_url(re.compile(r"#/jobs/queued\?function=backlog$"))
    page.locator(".range", has_text="of 121").wait_for()


def test_drop_an_unused_function(scene: Scene, page: Any, size: str) -> None:
    function = f"unused_{size}"
    handle = scene.submit(function, b"x")
    assert scene.console.act(f"/api/jobs/{handle}/cancel")[0] == 200
    open_page(page, scene, "#/functions")
    row = page.locator("table.functions tbody tr", has_text=function)
    row.get_by_role("button", name=f"Drop {function}").click()
    toast(page, "Drop: 0 jobs touched")
    row.wait_for(state="detached")


def test_function_page_shows_its_last_hour(scene: Scene, page: Any, shots: Path) -> None:
    with sync.Client([scene.console.server.address]) as client:
        for _ in range(5):
            assert client.submit("py_ok", b"x") == b"done"
    open_page(page, scene, "#/functions")
    page.locator("table.functions").get_by_role("link", name="py_ok", exact=True).click()
    page.wait_for_url(re.compile("#/function/py_ok$"))
    row = page.locator("table.rates tbody tr").first
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert int(cells[1]) >= 5 and cells[2] == "0", cells
    assert "ms" in cells[4] or " s" in cells[4], cells
    assert "processed" in page.locator(".totals").inner_text()
    page.screenshot(path=str(shots / f"function-{page.viewport_size['width']}.png"), full_page=True)


def test_pause_and_resume_a_function(scene: Scene, page: Any, size: str) -> None:
    open_page(page, scene, "#/functions")
    row = page.locator("table.functions tbody tr", has_text="noop")
    row.get_by_role("button", name="Pause noop").click()
    toast(page, r"Pause: 0 jobs touched")
    row.get_by_text("paused", exact=True).wait_for()
    # Paused, the PHP worker gets nothing: the job waits in the queued list.
    handle = scene.submit("noop", f"held {size}".encode())
    open_page(page, scene, "#/jobs/queued?function=noop")
    page.locator("table.jobs tbody tr", has_text=handle).wait_for()
    page.wait_for_timeout(2500)  # a poll later it still waits
    assert page.locator("table.jobs tbody tr", has_text=handle).count() == 1
    open_page(page, scene, "#/functions")
    row.get_by_role("button", name="Resume noop").click()
    toast(page, r"Resume: [01] jobs? touched")
    row.get_by_role("button", name="Pause noop").wait_for()
    wait_until(lambda: scene.jobs("queued", function="noop") == [], "the job did not run")


def test_queued_jobs_page_by_page_with_filters(scene: Scene, page: Any) -> None:
    open_page(page, scene, "#/jobs/queued?function=backlog")
    rng = page.locator(".range")
    rng.filter(has_text="1–50 of 121").wait_for()
    assert page.locator("table.jobs tbody tr").count() == 50
    page.get_by_role("button", name="next page").click()
    rng.filter(has_text="51–100 of 121").wait_for()
    assert "offset=50" in page.url
    page.reload()  # the hash keeps the page and the filter
    rng.filter(has_text="51–100 of 121").wait_for()
    page.get_by_label("priority").select_option("high")
    page.get_by_role("button", name="Filter", exact=True).click()
    rng.filter(has_text="1–9 of 9").wait_for()
    assert all(
        "high" in t for t in page.locator("table.jobs tbody td:nth-child(4)").all_text_contents()
    )
    page.get_by_label("priority").select_option("")
    page.get_by_label("order").select_option("-age")
    page.get_by_role("button", name="Filter", exact=True).click()
    page.wait_for_url(re.compile("sort=-age"))
    first = page.locator("table.jobs tbody tr").first
    first.filter(has_text="the one with a key").wait_for()  # the newest
    page.goto(scene.url + "#/jobs/queued?unique=order-4711")
    rng.filter(has_text="1–1 of 1").wait_for()
    page.goto(scene.url + "#/jobs/queued?function=backlog&q=order+low+1")
    rng.filter(has_text="of 2").wait_for()  # "order low 1" and "order low 10"
    page.goto(scene.url + "#/jobs/queued?function=nothing-by-this-name")
    page.get_by_text("no queued jobs match the filter").wait_for()
    # A total the server stopped counting (a text filter over a huge queue) is a lower bound.
    said = page.evaluate(
        "async () => (await import('/ui.js')).pager(100000, 50, 50, () => {}, false).textContent"
    )
    assert said == "‹ Previous51–100 of at least 100,000Next ›"


def test_binary_and_large_payloads_are_shown_as_such(scene: Scene, page: Any, size: str) -> None:
    function = f"blobs_{size}"
    binary = scene.submit(function, bytes(range(256)))
    large = scene.submit(function, b"line of text\n" * 1000)
    open_page(page, scene, f"#/jobs/queued?function={function}")
    row = page.locator("table.jobs tbody tr", has_text=binary)
    assert "binary, 256 B" in row.inner_text()
    row.get_by_role("link", name=binary).click()
    page.get_by_text("Payload, binary (hex)").wait_for()
    assert "000102030405" in page.locator("pre.payload-full").inner_text().replace(" ", "")
    page.goto(scene.url + "#/job/" + large)
    page.get_by_text("Payload (the first 4 KiB of 12.7 KiB)").wait_for()


def test_failed_job_detail_retry_and_delete(
    scene: Scene, page: Any, size: str, shots: Path
) -> None:
    handles = [scene.submit("py_fail", f"report {i} {size}".encode()) for i in range(3)]
    wait_until(
        lambda: {h for h in handles} <= {f["handle"] for f in scene.jobs("failed")}, "not failed"
    )
    open_page(page, scene, "#/jobs/failed?function=py_fail")
    row = page.locator("table.jobs tbody tr", has_text=handles[0])
    assert "disk full on /var/spool/out" in row.inner_text()
    row.get_by_role("link", name=handles[0]).click()
    page.wait_for_url(re.compile("#/job/"))
    page.locator("dl.facts").get_by_text("py_fail").wait_for()
    details = page.locator("main").inner_text()
    assert f"report 0 {size}" in details and "disk full on /var/spool/out" in details
    assert page.locator("table.history tbody tr").count() >= 1
    page.screenshot(path=str(shots / f"job-{size}.png"), full_page=True)
    page.get_by_role("button", name="Delete this job").click()
    toast(page, "Delete: 1 job touched")
    page.get_by_text("This job is gone").wait_for()
    # Retry one chosen from the list: it runs (and fails) again.
    open_page(page, scene, "#/jobs/failed?function=py_fail")
    page.get_by_role("checkbox", name="select " + handles[1]).check()
    page.get_by_role("button", name="Retry the selected jobs").click()
    toast(page, "Retry selected: 1 job touched")
    # Then every one the filter matches.
    page.get_by_role("button", name="Delete all jobs matching the filter").click()
    toast(page, r"Delete all \d+ matching: [12] jobs? touched")
    page.get_by_text("no failed jobs match the filter").wait_for()


def test_retries_sorted_by_due_time_and_retried_now(scene: Scene, page: Any, size: str) -> None:
    function = f"py_retry_{size}"
    handles = [scene.submit(function, f"retry {i}".encode()) for i in range(4)]
    wait_until(lambda: len(scene.jobs("retrying", function=function)) >= 4, "no retries")
    listed = [j for j in scene.jobs("retrying", function=function) if j["handle"] in handles]
    by_due = [j["handle"] for j in sorted(listed, key=lambda j: j["due"])]
    open_page(page, scene, f"#/jobs/retrying?function={function}")
    page.locator(".range", has_text="1–4 of 4").wait_for()
    shown = page.locator("table.jobs tbody td:nth-child(2)").all_inner_texts()
    assert shown[:4] == by_due
    assert "disk full" in page.locator("table.jobs tbody").inner_text()
    # Retry now: the job runs at once and, failing again, waits for its third attempt.
    first = by_due[0]

    def attempt() -> int:
        found = [j for j in scene.jobs("retrying", function=function) if j["handle"] == first]
        return int(found[0]["attempt"]) if found else 0

    before = attempt()
    page.get_by_role("button", name=f"Retry now {first}").click()
    toast(page, "Retry now: 1 job touched")
    wait_until(lambda: attempt() == before + 1, "the retry did not run now")


def test_cancel_selected_and_all_matching(scene: Scene, page: Any, size: str) -> None:
    function = f"to_cancel_{size}"
    handles = [scene.submit(function, f"job {i}".encode()) for i in range(5)]
    open_page(page, scene, f"#/jobs/queued?function={function}")
    page.locator(".range", has_text="1–5 of 5").wait_for()
    for handle in handles[:2]:
        page.get_by_role("checkbox", name="select " + handle).check()
    page.get_by_role("button", name="Cancel the selected jobs").click()
    toast(page, "Cancel selected: 2 jobs touched")
    page.locator(".range", has_text="1–3 of 3").wait_for()
    page.get_by_role("checkbox", name="select all on this page").check()
    for handle in handles[2:]:
        assert page.get_by_role("checkbox", name="select " + handle).is_checked()
    page.get_by_role("checkbox", name="select all on this page").uncheck()
    page.get_by_role("button", name="Cancel all jobs matching the filter").click()
    toast(page, "Cancel all 3 matching: 3 jobs touched")
    page.get_by_text("no queued jobs match the filter").wait_for()
    assert scene.jobs("queued", function=function) == []


def test_schedules_and_cluster_pages(scene: Scene, page: Any) -> None:
    open_page(page, scene, "#/schedules")
    body = page.locator("main")
    body.get_by_text("every-minute-report").wait_for()
    row = page.locator("table.schedules tr", has_text="every-minute-report")
    assert "* * * * *" in row.inner_text() and "report" in row.inner_text()
    history = row.locator("details")
    if history.count():  # once it has fired: its history stays open across refreshes
        history.locator("summary").click()
        page.wait_for_timeout(2500)
        assert history.evaluate("d => d.open")
    # Not a cluster member: the link is hidden and the page says so.
    assert page.locator("#nav a[data-page=cluster]").is_hidden()
    open_page(page, scene, "#/cluster")
    body.get_by_text("This server is not a cluster member.").wait_for()


def test_the_token_prompt_on_a_guarded_server(
    start_console: Callable[..., Console], browser: Any
) -> None:
    console = start_console("--http-token", "s3cret")
    with sync.Client([console.server.address]) as client:
        handle = client.submit_background("guarded", b"x").decode()
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        asked: list[str] = []

        def answer(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept("s3cret")

        page.on("dialog", answer)
        page.goto(f"http://127.0.0.1:{console.port}/#/jobs/queued")
        page.get_by_role("button", name=f"Cancel {handle}").click()
        toast(page, "Cancel: 1 job touched")
        assert asked and "token" in asked[0]
    finally:
        context.close()


# In-page checks (a11y.js): controls without an accessible name; texts whose contrast
# against the background they are painted on is under 4.5 (the WCAG 2 formula).
A11Y = (HERE / "a11y.js").read_text()
CONTROLS_WITHOUT_NAME = f"() => {{ {A11Y}; return controlsWithoutName(); }}"
LOW_CONTRAST = f"() => {{ {A11Y}; return lowContrast(); }}"


def test_accessibility_names_contrast_and_keyboard(scene: Scene, page: Any) -> None:
    scene.submit("flaky", b"another php failure")
    keyed = scene.submit("kbd_cancel", b"cancel me by keyboard")
    main_pages = ["#/", "#/busy", "#/functions", "#/jobs/queued", "#/jobs/retrying"]
    main_pages += ["#/jobs/failed", "#/function/backlog", "#/schedules", "#/audit"]
    for where in main_pages:
        open_page(page, scene, where)
        page.locator("main .card").first.wait_for()
        page.wait_for_timeout(300)
        assert page.evaluate(CONTROLS_WITHOUT_NAME) == [], where
        assert page.evaluate(LOW_CONTRAST) == [], where
    # The keyboard alone: Tab reaches the action, Enter does it.
    open_page(page, scene, "#/jobs/queued?function=kbd_cancel")
    target = page.get_by_role("button", name=f"Cancel {keyed}")
    target.wait_for()
    for _ in range(200):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.getAttribute('aria-label')") == (
            f"Cancel {keyed}"
        ):
            break
    else:
        raise AssertionError("Tab never reached the Cancel button")
    page.keyboard.press("Enter")
    toast(page, "Cancel: 1 job touched")
    # Every action of these pages is reachable by Tab too.
    open_page(page, scene, "#/jobs/failed")
    page.locator("table.jobs tbody button").first.wait_for()
    tab_reaches_every_action(page)
    open_page(page, scene, "#/functions")
    tab_reaches_every_action(page)
    page.goto(scene.url + "#/job/" + scene.jobs("failed")[0]["handle"])
    page.get_by_role("button", name="Retry this job").wait_for()
    tab_reaches_every_action(page)


def tab_reaches_every_action(page: Any) -> None:
    name = "e => e.getAttribute('aria-label') || e.textContent"
    wanted = set(page.locator("main button:not([disabled])").evaluate_all(f"bs => bs.map({name})"))
    reached: set[str] = set()
    for _ in range(400):
        page.keyboard.press("Tab")
        reached.add(page.evaluate(f"() => ({name})(document.activeElement)"))
        if wanted <= reached:
            return
    raise AssertionError(f"Tab never reached {wanted - reached} on {page.url}")


def test_audit_lists_each_action_with_who_and_how_many(scene: Scene, page: Any, size: str) -> None:
    function = f"audited_{size}"
    handles = [scene.submit(function, b"x") for _ in range(3)]
    open_page(page, scene, f"#/jobs/queued?function={function}")
    page.get_by_role("button", name="Cancel all jobs matching the filter").click()
    toast(page, "Cancel all 3 matching: 3 jobs touched")
    open_page(page, scene, "#/audit")
    row = page.locator("table.audit tbody tr", has_text=function).first
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert "127.0.0.1" in cells[1] and "cancel" in cells[2] and cells[4] == "3", cells
    assert page.locator(".range").inner_text().startswith("1–")
    assert not set(handles) & {j["handle"] for j in scene.jobs("queued", function=function)}


def test_cluster_page_shows_every_member_on_each(browser: Any, size: str, shots: Path) -> None:
    from cluster.stores import RedisShared  # the cluster tests' shared store

    store = RedisShared()
    servers: list[ServerProc] = []
    context = browser.new_context(viewport=DESKTOP if size == "desktop" else PHONE)
    try:
        ports = [free_port(), free_port()]
        for port in ports:
            flags = [*store.flags(), "--cluster", "--cluster-lease", "3"]
            servers.append(start_server_process("geartrain", [*flags, "--console-port", str(port)]))
        page = context.new_page()
        page.set_default_timeout(20_000)
        for port in ports:
            page.goto(f"http://127.0.0.1:{port}/#/cluster")
            page.locator("#nav a[data-page=cluster]").wait_for()  # shown on a member
            page.locator("table.members tbody tr").nth(1).wait_for()
            rows = page.locator("table.members tbody tr")
            assert rows.count() == 2
            text = rows.all_inner_texts()
            assert sum("this server" in t for t in text) == 1
            width = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
            assert width[0] <= width[1]
        page.screenshot(path=str(shots / f"cluster-member-{size}.png"), full_page=True)
    finally:
        context.close()
        for server in servers:
            server.cleanup()
        store.cleanup()


def test_a_refused_action_says_why(
    start_console: Callable[..., Console], browser: Any, tmp_path: Path
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[access.anonymous]\nsubmit = ["public.*"]\n')  # and no admin rights
    console = start_console("--settings", str(settings))
    with sync.Client([console.server.address]) as client:
        handle = client.submit_background("public.report", b"x").decode()
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"http://127.0.0.1:{console.port}/#/jobs/queued")
        page.get_by_role("button", name=f"Cancel {handle}").click()
        said = toast(page, "Cancel: the access rules do not allow 'cancel' here")
        assert "\n" not in said
        assert page.locator("table.jobs tbody tr", has_text=handle).count() == 1
    finally:
        context.close()
