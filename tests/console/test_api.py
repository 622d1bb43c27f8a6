"""The JSON API against a real server: what the console shows and does, and who may act."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Callable
from pathlib import Path

from geartrain import Client, Worker
from geartrain.protocol import PacketType
from gt_helpers import wait_for, working
from wire import Wire

from .conftest import Console

T = PacketType


def test_health_probes(console: Console) -> None:
    assert console.request("GET", "/healthz")[:3:2] == (200, b"ok\n")
    assert console.request("GET", "/readyz")[:3:2] == (200, b"ready\n")
    assert console.get("/api/status")["ready"] is True


async def test_workers_functions_and_running_jobs(console: Console) -> None:
    address = console.server.address
    release = asyncio.Event()

    async def slow(job):  # type: ignore[no-untyped-def]
        job.send_status(3, 4)
        await release.wait()
        return b"done"

    worker = Worker([address], client_id="resizer-7")
    worker.register("resize", slow)
    async with working(worker), Client([address]) as client:
        running = asyncio.ensure_future(client.submit("resize", b"picture", timeout=30))
        await client.submit_background("resize", b"later", unique="u-later", priority="low")

        def progressed() -> bool:
            jobs = console.get("/api/jobs?state=running")["jobs"]
            return bool(jobs) and jobs[0]["progress"] == [3, 4]

        await wait_for(lambda: asyncio.to_thread(progressed), timeout=20)
        (workers,) = console.get("/api/workers")["workers"]
        assert workers["client_id"] == "resizer-7" and workers["functions"] == ["resize"]
        (doing,) = workers["jobs"]
        assert doing["function"] == "resize" and doing["data_preview"] == "picture"
        assert doing["running_seconds"] >= 0

        (queued,) = console.get("/api/jobs?state=queued")["jobs"]
        assert (queued["unique"], queued["priority"]) == ("u-later", "low")
        (f,) = console.get("/api/functions")
        assert f["function"] == "resize" and f["running"] == 1 and f["workers"] == 1
        assert f["queued"] == {"high": 0, "normal": 0, "low": 1, "total": 1}
        assert f["oldest_queued_seconds"] >= 0
        assert console.get(f"/api/jobs/{queued['handle']}")["state"] == "queued"

        # cancel removes the queued job; it is gone from the lists and the admin protocol
        status, reply = console.act(f"/api/jobs/{queued['handle']}/cancel")
        assert status == 200 and reply == {"cancelled": queued["handle"], "touched": 1}
        assert console.get("/api/jobs?state=queued")["jobs"] == []
        assert console.request("GET", f"/api/jobs/{queued['handle']}")[0] == 404
        status_counts = console.get("/api/status")["counts"]
        assert status_counts["running"] == 1 and status_counts["queued"] == 0
        release.set()
        assert await running == b"done"


async def test_submit_foreground_background_and_timeout(console: Console) -> None:
    worker = Worker([console.server.address])
    worker.register("upper", lambda job: job.data.upper())
    async with working(worker):
        status, reply = await asyncio.to_thread(
            console.act, "/api/jobs", {"function": "upper", "data": "abc"}
        )
        assert status == 200 and reply["command"] == "WORK_COMPLETE" and reply["result"] == "ABC"
    status, reply = console.act("/api/jobs", {"function": "later", "background": True})
    assert status == 202 and reply["command"] == "JOB_CREATED" and reply["handle"]
    assert console.get(f"/api/jobs/{reply['handle']}")["function"] == "later"
    started = time.monotonic()
    status, reply = console.act("/api/jobs", {"function": "nobody", "timeout": 0.5})
    assert status == 202 and reply["timed_out"] is True
    assert time.monotonic() - started < 20
    assert console.act("/api/jobs", {"data": "no function"})[0] == 400
    assert console.act("/api/jobs", {"function": "f", "priority": "urgent"})[0] == 400


def test_drop_function(console: Console) -> None:
    console.act("/api/jobs", {"function": "gone", "background": True})
    handle = console.get("/api/jobs")["jobs"][0]["handle"]
    assert console.act("/api/functions/gone/drop")[0] == 409  # it still has a job
    console.act(f"/api/jobs/{handle}/cancel")
    assert console.act("/api/functions/gone/drop") == (200, {"dropped": "gone"})
    assert console.get("/api/functions") == []
    assert console.act("/api/functions/gone/drop")[0] == 404


def test_actions_need_the_csrf_header_and_same_origin(console: Console) -> None:
    body = json.dumps({"function": "f", "background": True})
    status, _, _ = console.request("POST", "/api/jobs", body)
    assert status == 403
    status, _, _ = console.request(
        "POST",
        "/api/jobs",
        body,
        {"X-Geartrain-Console": "1", "Origin": "http://evil.example"},
    )
    assert status == 403
    origin = f"http://127.0.0.1:{console.port}"
    assert console.act("/api/jobs", json.loads(body), Origin=origin)[0] == 202
    assert console.get("/api/status")["jobs"] == 1  # only the allowed one was made
    assert console.request("GET", "/api/jobs/x/cancel")[0] == 405  # actions are POST only


def test_token(start_console: Callable[..., Console]) -> None:
    console = start_console("--http-token", "s3cret")
    body = {"function": "f", "background": True}
    assert console.act("/api/jobs", body)[0] == 401
    assert console.act("/api/jobs", body, Authorization="Bearer wrong")[0] == 401
    assert console.act("/api/jobs", body, Authorization="Bearer s3cret")[0] == 202
    assert console.request("GET", "/api/status")[0] == 200  # reading stays open


def test_failed_jobs_start_empty(console: Console) -> None:
    assert console.get("/api/status")["counts"]["dead"] == 0
    assert console.get("/api/failed")["failed"] == []


def test_access_rules_hold_for_console_actions(
    start_console: Callable[..., Console], tmp_path: Path
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[access.anonymous]\nsubmit = ["*"]\nadmin = ["read"]\n')
    console = start_console(f"--settings={settings}")
    assert console.act("/api/jobs", {"function": "f", "background": True})[0] == 202
    handle = console.get("/api/jobs")["jobs"][0]["handle"]
    status, reply = console.act(f"/api/jobs/{handle}/cancel")
    assert status == 403 and "cancel" in reply
    assert console.act("/api/failed/retry")[0] == 403
    assert console.act(f"/api/jobs/{handle}/retry")[0] == 403
    assert console.act(f"/api/jobs/{handle}/delete")[0] == 403
    assert console.act("/api/jobs/bulk", {"action": "cancel", "handles": [handle]})[0] == 403
    assert console.get("/api/status")["counters"]["refused_admin"] == 5
    assert console.get("/api/status")["jobs"] == 1  # nothing was cancelled


def test_history_and_live_events(console: Console) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=30)
    conn.request("GET", "/api/events")
    reply = conn.getresponse()
    assert reply.status == 200 and reply.headers["Content-Type"] == "text/event-stream"
    console.act("/api/jobs", {"function": "f", "background": True})
    lines: list[bytes] = []
    while not any(line.startswith(b"data: ") for line in lines):
        lines.append(reply.fp.readline())
    conn.close()
    assert b"event: tick\n" in lines
    tick = json.loads(next(line for line in lines if line.startswith(b"data: "))[6:])
    assert len(tick["point"]) == 4 and tick["status"]["version"]
    history = console.get("/api/history")
    assert history["fields"] == ["time", "submitted", "completed", "failed"]
    deadline = time.monotonic() + 20
    while sum(p[1] for p in history["points"]) < 1:  # the submission shows within a tick
        assert time.monotonic() < deadline
        time.sleep(0.2)
        history = console.get("/api/history")


def test_kept_results_are_read_by_handle(
    start_console: Callable[..., Console], tmp_path: Path
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[functions."kept"]\nkeep_results = "10m"\n')
    console = start_console(f"--settings={settings}")
    port = console.server.port
    with Wire(port) as client, Wire(port) as worker:
        text_job = client.submit(b"kept", b"a", b"", T.SUBMIT_JOB_BG)
        binary_job = client.submit(b"kept", b"b", b"", T.SUBMIT_JOB_BG)
        queued = console.get(f"/api/jobs/{text_job.decode()}/result")
        assert queued == {"handle": text_job.decode(), "status": "queued", "ended": False}
        worker.send(T.CAN_DO, b"kept")
        for data in ("naïve ✓".encode(), b"\xff\0\xfe"):
            assigned = worker.grab()
            assert assigned is not None
            worker.send(T.WORK_COMPLETE, assigned[0], data)
        worker.sync()
    done = console.get(f"/api/jobs/{text_job.decode()}/result?wait=5")
    assert (done["status"], done["data"], done["encoding"]) == ("complete", "naïve ✓", "utf-8")
    assert done["function"] == "kept" and done["expires_at"] == done["ended_at"] + 600
    binary = console.get(f"/api/jobs/{binary_job.decode()}/result")
    assert (binary["data"], binary["encoding"]) == ("/wD+", "base64")
    assert console.request("GET", "/api/jobs/H:nosuch:1/result")[0] == 404
    assert console.request("GET", f"/api/jobs/{text_job.decode()}/result?wait=x")[0] == 400
