"""/metrics from a real server: gearman-exporter's names, per-function outcomes, histograms."""

from __future__ import annotations

import asyncio
import re
import subprocess

import pytest

from geartrain import Client, JobFailed, Worker

from .conftest import Console


async def test_metrics_follow_the_jobs(console: Console) -> None:
    address = console.server.address

    async with Worker([address]) as worker:
        worker.register("ok", lambda job: b"fine")
        worker.register("bad", lambda job: job.fail())
        worker.register("raises", lambda job: 1 / 0)
        async with Client([address]) as client:
            for _ in range(3):
                await client.submit("ok", b"x", timeout=10)
            with pytest.raises(JobFailed):
                await client.submit("bad", b"x", timeout=10)
            with pytest.raises(JobFailed):
                await client.submit("raises", b"x", timeout=10)
            await client.submit_background("<idle&fn>", b"x", priority="high")

    status, headers, body = await asyncio.to_thread(console.request, "GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    lines = set(body.decode().splitlines())
    # gearman-exporter's names stay as they were
    assert 'gearman_jobs{function="<idle&fn>"} 1.0' in lines
    assert 'geartrain_jobs_queued{function="<idle&fn>",priority="high"} 1.0' in lines
    assert 'geartrain_oldest_queued_job_age_seconds{function="ok"} 0.0' in lines
    assert "gearman_up 1.0" in lines
    # per function: submissions and how attempts ended, so "function X keeps failing"
    # can alert; one label name and one spelling for each outcome
    assert 'geartrain_jobs_submitted_total{function="ok"} 3.0' in lines
    assert 'geartrain_job_attempts_total{function="ok",outcome="completed"} 3.0' in lines
    assert 'geartrain_job_attempts_total{function="bad",outcome="failed"} 1.0' in lines
    assert 'geartrain_job_attempts_total{function="raises",outcome="exception"} 1.0' in lines
    assert 'geartrain_jobs_retried_total{function="bad"} 0.0' in lines
    labels = {label for line in lines for label in re.findall(r'[{,](\w+)="', line)}
    assert labels == {"function", "outcome", "priority", "le", "version", "level", "limit", "kind"}
    # latency histograms in seconds, and the process collector
    assert 'geartrain_job_run_seconds_count{function="ok"} 3.0' in lines
    assert 'geartrain_job_queue_wait_seconds_bucket{function="ok",le="+Inf"} 3.0' in lines
    assert any(line.startswith("process_resident_memory_bytes ") for line in lines)

    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert checked.returncode == 0 and not checked.stdout + checked.stderr, checked

    data = console.get("/status.json")
    assert data["counters"]["completed"] == 3 and data["jobs"] == 1
    assert {f["function"] for f in data["functions"]} == {"ok", "bad", "raises", "<idle&fn>"}


async def test_the_oldest_queued_job_ages(console: Console) -> None:
    address = console.server.address
    async with Client([address]) as client:
        await client.submit_background("nobody", b"first")
        await asyncio.sleep(1.5)
        await client.submit_background("nobody", b"second")
    body = (await asyncio.to_thread(console.request, "GET", "/metrics"))[2].decode()
    age = re.search(
        r'^geartrain_oldest_queued_job_age_seconds\{function="nobody"\} (\S+)$', body, re.M
    )
    assert age is not None and 1.5 <= float(age.group(1)) < 60


def test_head_has_no_body(console: Console) -> None:
    status, headers, body = console.request("HEAD", "/metrics")
    assert status == 200 and body == b""
    status, headers, body = console.request("HEAD", "/")
    assert status == 200 and body == b"" and headers["Content-Type"].startswith("text/html")


def test_unknown_paths_and_methods(console: Console) -> None:
    assert console.request("GET", "/nope")[0] == 404
    assert console.request("POST", "/metrics", b"")[0] in (403, 405)
    assert console.request("PUT", "/api/status", b"", {"X-Geartrain-Console": "1"})[0] == 405
