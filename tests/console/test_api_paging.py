"""The console's job lists, detail view, actions and audit over a real server,
with real Python and PHP peers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from geartrain import Admin, Client, Worker
from gt_helpers import wait_for, working

from .conftest import Console, php_submit

SETTINGS = """
[functions."flaky"]
attempts = 3
retry_on = ["fail"]
backoff_base = 3600.0
jitter = 0.0

[functions."doomed"]
attempts = 1
"""


def jobs(console: Console, query: str) -> dict:  # type: ignore[type-arg]
    return console.get(f"/api/jobs?{query}")


async def test_paging_totals_filters_and_flags(console: Console) -> None:
    address = console.server.address
    async with Client([address]) as client:
        for i in range(120):
            await client.submit_background("email", f"mail {i}".encode(), unique=f"e{i}")
        for i in range(40):
            await client.submit_background("video", b"clip", unique=f"v{i}", priority="high")
        for i in range(30):
            await client.submit_background("email", b"digest", unique=f"d{i}", priority="low")
    php = [await asyncio.to_thread(php_submit, console, "report", b"php report") for _ in range(10)]
    assert all(php)

    first = jobs(console, "state=queued")
    assert (first["total"], first["offset"], first["limit"], len(first["items"])) == (
        200,
        0,
        50,
        50,
    )
    seen = []
    for offset in range(0, 200, 50):
        seen += jobs(console, f"state=queued&offset={offset}")["items"]
    assert len({j["handle"] for j in seen}) == 200
    created = [j["created"] for j in seen]
    assert created == sorted(created)  # oldest first, across functions and priorities
    assert jobs(console, "state=queued&offset=200")["items"] == []
    newest = jobs(console, "sort=-age&limit=1")["items"][0]
    assert newest["function"] == "report" and newest["handle"] == seen[-1]["handle"]

    assert jobs(console, "function=email")["total"] == 150
    low = jobs(console, "function=email&priority=low&limit=500")
    assert low["total"] == 30 and {j["priority"] for j in low["items"]} == {"low"}
    high = jobs(console, "priority=high")
    assert high["total"] == 40 and {j["function"] for j in high["items"]} == {"video"}
    (one,) = jobs(console, "unique=v7")["items"]
    assert one["unique"] == "v7" and one["state"] == "queued" and one["preview"] == "clip"
    found = jobs(console, "q=php")
    assert (found["total"], found["exact"]) == (10, True)
    assert found["items"][0]["preview"] == "php report" and not found["items"][0]["binary"]
    # "mail 1", "mail 10".."mail 19", "mail 100".."mail 119"
    assert jobs(console, "q=mail%201&function=email")["total"] == 31
    assert jobs(console, "limit=100000")["limit"] == 500
    for bad in ("state=lost", "priority=urgent", "sort=size", "offset=x"):
        status, headers, body = console.request("GET", f"/api/jobs?{bad}")
        assert status == 400 and "error" in json.loads(body), bad

    functions = {f["function"]: f for f in console.get("/api/functions")}
    report = functions["report"]
    assert report["queued"] == {"high": 0, "normal": 10, "low": 0, "total": 10}
    assert report["flags"] == ["no_workers"] and report["paused"] is False
    assert report["oldest_age"] >= 0 and report["workers"] == 0
    assert functions["email"]["queued"]["total"] == 150
    flags = {f["function"]: f["flags"] for f in console.get("/api/status")["flags"]}
    assert flags == {"email": ["no_workers"], "video": ["no_workers"], "report": ["no_workers"]}

    # A paused function's backlog waits on purpose: no flag; the pause is in the audit list.
    assert console.act("/api/functions/report/pause")[0] == 200
    report = {f["function"]: f for f in console.get("/api/functions")}["report"]
    assert report["paused"] is True and report["flags"] == []
    assert "report" not in {f["function"] for f in console.get("/api/status")["flags"]}
    (entry,) = console.get("/api/audit")["items"]
    assert (entry["action"], entry["target"], entry["touched"]) == ("pause", "report", 10)


async def test_running_jobs_and_rates_with_real_workers(console: Console, php_worker: Path) -> None:
    address = console.server.address
    await wait_for(lambda: bool(console.get("/api/workers")["workers"]), timeout=20)
    python = Worker([address], client_id="py-worker")
    python.register("upper", lambda job: job.data.upper())
    async with working(python), Client([address]) as client:
        for i in range(12):
            assert await client.submit("upper", f"w{i}".encode(), timeout=30) == f"W{i}".encode()
        for _ in range(8):
            await client.submit("noop", b"", timeout=30)
        handle = await asyncio.to_thread(php_submit, console, "resize", b"cat.jpg")

        def running() -> bool:
            return jobs(console, "state=running")["total"] == 1

        await wait_for(lambda: asyncio.to_thread(running), timeout=20)
        (job,) = jobs(console, "state=running")["items"]
        assert (job["handle"], job["worker"], job["state"]) == (
            handle,
            "php-console-worker",
            "running",
        )
        detail = console.get(f"/api/jobs/{handle}")
        assert detail["history"][-1]["outcome"] == "running" and detail["actions"] == ["cancel"]

        minutes = console.get("/api/rates?function=upper")["minutes"]
        assert len(minutes) == 60 and minutes[-1]["at"] > minutes[0]["at"]
        assert sum(m["processed"] for m in minutes) == 12
        assert any(m["run"]["p99"] is not None for m in minutes)
        noop = {f["function"]: f for f in console.get("/api/functions")}["noop"]
        assert noop["rates"]["processed"] == pytest.approx(8 / 5)
        (php_worker / "release").touch()


def test_detail_binary_payloads_and_json_errors(console: Console) -> None:
    status, created = console.act(
        "/api/jobs", {"function": "later", "background": True, "data": "x" * 5000}
    )
    assert status == 202
    detail = console.get(f"/api/jobs/{created['handle']}")
    assert detail["payload"] == "x" * 4096 and detail["truncated"] and not detail["binary"]
    assert detail["size"] == 5000 and detail["preview"] == "x" * 200
    assert detail["actions"] == ["cancel"] and detail["history"] == []
    assert detail["state"] == "queued" and detail["next_retry"] is None

    asyncio.run(_submit_binary(console.server.address))
    (binary,) = jobs(console, "function=blob")["items"]
    assert binary["binary"] and binary["preview"] == "00ff10"
    assert console.get(f"/api/jobs/{binary['handle']}")["payload"] == "00ff10"

    assert console.get("/api/cluster") == {"enabled": False, "members": []}
    for method, path, code in (
        ("GET", "/api/jobs/H:nowhere:1", 404),
        ("GET", "/api/nothing/here", 404),
        ("GET", "/api/jobs/x/cancel", 405),
        ("POST", "/api/jobs/H:nowhere:1/retry", 404),
    ):
        status, headers, body = console.request(method, path, headers={"X-Geartrain-Console": "1"})
        assert status == code and headers["Content-Type"].startswith("application/json"), path
        assert json.loads(body)["error"]
    assert console.request("GET", "/api/nothing")[2] == b'{"error": "no such API: /api/nothing"}'
    for body in (
        b"not json",
        b"[]",
        b'{"action": "retry"}',
        b'{"action": "retry", "handles": [1]}',
    ):
        status, _, reply = console.request(
            "POST", "/api/jobs/bulk", body, {"X-Geartrain-Console": "1"}
        )
        assert status == 400 and json.loads(reply)["error"].startswith("give {"), body
    bad = {"action": "cancel", "filter": {"state": "lost"}}
    assert console.act("/api/jobs/bulk", bad) == (
        400,
        {
            "error": "state must be one of "
            + ", ".join(("queued", "running", "scheduled", "retrying", "failed"))
        },
    )


async def _submit_binary(address: str) -> None:
    async with Client([address]) as client:
        await client.submit_background("blob", b"\x00\xff\x10")


async def test_retry_now_failed_bulk_actions_and_audit(
    start_console: Callable[..., Console], tmp_path: Path
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(SETTINGS)
    console = start_console("--settings", str(settings))
    address = console.server.address
    attempts: dict[bytes, int] = {}

    def flaky(job):  # type: ignore[no-untyped-def]
        attempts[job.data] = attempts.get(job.data, 0) + 1
        if attempts[job.data] == 1:
            job.fail()
            return None
        return b"ok"

    def doomed(job):  # type: ignore[no-untyped-def]
        job.fail()

    worker = Worker([address])
    worker.register("flaky", flaky)
    worker.register("doomed", doomed)
    async with working(worker), Client([address]) as client:
        submitted = time.time()
        handle = (await client.submit_background("flaky", b"f1")).decode()
        await wait_for(lambda: jobs(console, "state=retrying")["total"] == 1, timeout=20)
        (waiting,) = jobs(console, "state=retrying")["items"]
        assert waiting["handle"] == handle and waiting["due"] > time.time() + 3000
        assert (waiting["attempt"], waiting["attempts"], waiting["reason"]) == (2, 3, "fail")
        detail = console.get(f"/api/jobs/{handle}")
        assert detail["actions"] == ["retry", "cancel"] and detail["next_retry"] == waiting["due"]
        (attempt,) = detail["history"]
        assert attempt["outcome"] == "fail"
        # Each past attempt says when it began and when it ended.
        assert submitted <= attempt["started"] <= attempt["ended"] <= time.time()
        assert console.act(f"/api/jobs/{handle}/retry") == (200, {"retry": handle, "touched": 1})
        await wait_for(lambda: attempts.get(b"f1") == 2, timeout=20)
        await wait_for(lambda: jobs(console, "state=retrying")["total"] == 0, timeout=20)

        for i in range(5):
            await client.submit_background("doomed", f"d{i}".encode())
        await wait_for(lambda: jobs(console, "state=failed")["total"] == 5, timeout=20)
        failed = jobs(console, "state=failed&function=doomed")["items"]
        assert {j["state"] for j in failed} == {"failed"} and failed[0]["reason"] == "fail"
        assert console.get(f"/api/jobs/{failed[0]['handle']}")["actions"] == ["retry", "delete"]
        retried = console.act(
            "/api/jobs/bulk",
            {"action": "retry", "filter": {"state": "failed", "function": "doomed"}},
        )
        assert retried == (200, {"touched": 5})
        await wait_for(lambda: jobs(console, "state=failed")["total"] == 5, timeout=20)
        two = [j["handle"] for j in failed[:2]]
        assert console.act("/api/jobs/bulk", {"action": "delete", "handles": [*two, "H:no:1"]}) == (
            200,
            {"touched": 2},
        )
        assert jobs(console, "state=failed")["total"] == 3
        async with Admin(address) as admin:
            assert await admin.retry_failed_all("doomed") == 3

    async with Client([address]) as client:
        for i in range(7):
            await client.submit_background("idle", f"i{i}".encode(), priority="low")
        await client.submit_background("idle", b"keep", priority="high")
    cancelled = console.act(
        "/api/jobs/bulk", {"action": "cancel", "filter": {"function": "idle", "priority": "low"}}
    )
    assert cancelled == (200, {"touched": 7})
    assert jobs(console, "function=idle")["total"] == 1
    (kept,) = jobs(console, "function=idle")["items"]
    assert console.act(f"/api/jobs/{kept['handle']}/delete")[0] == 200
    assert console.act("/api/jobs/bulk", {"action": "explode", "handles": []})[0] == 400

    audit = console.get("/api/audit")
    entries = [(e["action"], e["touched"]) for e in audit["items"]]
    assert entries[:6] == [
        ("delete", 1),
        ("cancel", 7),
        ("retry", 3),
        ("delete", 2),
        ("retry", 5),
        ("retry", 1),
    ]
    assert audit["total"] == 6
    assert [e["who"] for e in audit["items"]][1:3] == ["127.0.0.1 (console)", "127.0.0.1 (admin)"]
    assert {e["who"] for e in audit["items"]} == {"127.0.0.1 (console)", "127.0.0.1 (admin)"}
    assert audit["items"][1]["target"] == 'all matching {"function": "idle", "priority": "low"}'
    assert console.get("/api/audit?offset=5&limit=1")["items"][0]["target"] == handle


async def test_audit_names_the_token_holder_and_admin_peers(
    start_console: Callable[..., Console],
) -> None:
    console = start_console("--http-token", "s3cret")
    body = {"action": "cancel", "handles": ["H:none:1"]}
    reply = await asyncio.to_thread(
        console.act, "/api/jobs/bulk", body, Authorization="Bearer s3cret"
    )
    assert reply == (200, {"touched": 0})
    async with Admin(console.server.address) as admin:
        assert not await admin.cancel_job("H:none:2")
    newest, first = console.get("/api/audit")["items"]
    assert (first["who"], first["action"], first["touched"]) == (
        "127.0.0.1 (console with the token)",
        "cancel",
        0,
    )
    assert (newest["who"], newest["action"], newest["target"]) == (
        "127.0.0.1 (admin)",
        "cancel",
        "H:none:2",
    )


def test_schedules_listed_with_next_firing(
    start_console: Callable[..., Console], tmp_path: Path
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        '[[schedules]]\nname = "nightly"\ncron = "0 3 * * *"\nfunction = "report"\n'
    )
    console = start_console("--settings", str(settings))
    (schedule,) = console.get("/api/schedules")
    assert schedule["name"] == "nightly" and schedule["function"] == "report"
    assert schedule["cron"] == "0 3 * * *" and schedule["last"] is None
    assert schedule["history"] == []
    assert schedule["next"] % 86400 == 3 * 3600 and 0 < schedule["next"] - time.time() <= 86400


async def test_a_function_whose_oldest_job_waits_too_long_is_flagged(
    start_console: Callable[..., Console],
) -> None:
    console = start_console("--console-stale-after", "0.5")
    async with Client([console.server.address]) as client:
        await client.submit_background("waits", b"w")

    def stale() -> bool:
        flags = {f["function"]: f["flags"] for f in console.get("/api/status")["flags"]}
        return flags.get("waits") == ["no_workers", "stale"]

    await wait_for(lambda: asyncio.to_thread(stale), timeout=20)
    (waits,) = [f for f in console.get("/api/functions") if f["function"] == "waits"]
    assert waits["flags"] == ["no_workers", "stale"] and waits["oldest_age"] > 0.5


@pytest.mark.slow
async def test_a_schedule_firing_is_listed_with_what_became_of_its_job(
    start_console: Callable[..., Console], tmp_path: Path
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        '[[schedules]]\nname = "minutely"\ncron = "* * * * *"\nfunction = "tick"\npayload = "t"\n'
    )
    console = start_console("--settings", str(settings))
    assert console.get("/api/schedules")[0]["next"] % 60 == 0

    def fired() -> bool:
        return bool(console.get("/api/schedules")[0]["history"])

    await wait_for(lambda: asyncio.to_thread(fired), timeout=90, interval=0.5)
    (schedule,) = console.get("/api/schedules")
    firing = schedule["history"][0]  # the newest
    assert firing["at"] == schedule["last"] and firing["outcome"] == "queued"
    assert schedule["next"] == schedule["last"] + 60
    worker = Worker([console.server.address])
    worker.register("tick", lambda job: b"")
    async with working(worker):

        def finished() -> bool:
            return console.get("/api/schedules")[0]["history"][0]["outcome"] == "finished"

        await wait_for(lambda: asyncio.to_thread(finished), timeout=20)
    assert console.request("GET", f"/api/jobs/{firing['handle']}")[0] == 404  # done: gone
