"""/metrics from a real server: gearman-exporter's names, per-function outcomes, histograms."""

from __future__ import annotations

import asyncio

import pytest

from geartrain import Client, JobFailed, Worker

from .conftest import Console


async def test_metrics_follow_the_jobs(console: Console) -> None:
    address = console.server.address

    async with Worker([address]) as worker:
        worker.register("ok", lambda job: b"fine")
        worker.register("bad", lambda job: job.fail())
        async with Client([address]) as client:
            for _ in range(3):
                await client.submit("ok", b"x", timeout=10)
            with pytest.raises(JobFailed):
                await client.submit("bad", b"x", timeout=10)
            await client.submit_background("<idle&fn>", b"x", priority="high")

    status, headers, body = await asyncio.to_thread(console.request, "GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    lines = set(body.decode().splitlines())
    # gearman-exporter's names stay as they were
    assert 'gearman_jobs{function="<idle&fn>"} 1.0' in lines
    assert 'geartrain_jobs_queued{function="<idle&fn>",priority="high"} 1.0' in lines
    assert 'geartrain_jobs_finished_total{outcome="completed"} 3.0' in lines
    assert "gearman_up 1.0" in lines
    # per function: outcomes and submissions, so "function X keeps failing" can alert
    assert 'geartrain_function_jobs_total{event="completed",function="ok"} 3.0' in lines
    assert 'geartrain_function_jobs_total{event="submitted",function="ok"} 3.0' in lines
    assert 'geartrain_function_jobs_total{event="failed",function="bad"} 1.0' in lines
    # latency histograms in seconds, and the process collector
    assert 'geartrain_job_run_seconds_count{function="ok"} 3.0' in lines
    assert 'geartrain_job_queue_wait_seconds_bucket{function="ok",le="+Inf"} 3.0' in lines
    assert any(line.startswith("process_resident_memory_bytes ") for line in lines)

    data = console.get("/status.json")
    assert data["counters"]["completed"] == 3 and data["jobs"] == 1
    assert {f["function"] for f in data["functions"]} == {"ok", "bad", "<idle&fn>"}


def test_head_has_no_body(console: Console) -> None:
    status, headers, body = console.request("HEAD", "/metrics")
    assert status == 200 and body == b""
    status, headers, body = console.request("HEAD", "/")
    assert status == 200 and body == b"" and headers["Content-Type"].startswith("text/html")


def test_unknown_paths_and_methods(console: Console) -> None:
    assert console.request("GET", "/nope")[0] == 404
    assert console.request("POST", "/metrics", b"")[0] in (403, 405)
    assert console.request("PUT", "/api/status", b"", {"X-Geartrain-Console": "1"})[0] == 405
