"""`--metrics-port`: Prometheus metrics, JSON status and the dashboard, from a real server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from geartrain import Client, Worker
from serverproc import ServerProc, free_port


def get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.fixture
def metered(start_server: Callable[..., ServerProc]) -> tuple[ServerProc, int]:
    port = free_port()
    return start_server("geartrain", ["--metrics-port", str(port)]), port


async def test_metrics_follow_the_jobs(metered: tuple[ServerProc, int]) -> None:
    server, port = metered
    async with Worker([server.address]) as worker:
        worker.register("ok", lambda job: b"fine")
        async with Client([server.address]) as client:
            for _ in range(3):
                await client.submit("ok", b"x", timeout=10)
            await client.submit_background("<idle&fn>", b"x", priority="high")

    status, ctype, text = get(port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    lines = set(text.splitlines())
    assert 'gearman_jobs{function="<idle&fn>"} 1.0' in lines
    assert 'geartrain_jobs_queued{function="<idle&fn>",priority="high"} 1.0' in lines
    assert 'geartrain_jobs_finished_total{outcome="completed"} 3.0' in lines
    assert "gearman_up 1.0" in lines
    assert 'geartrain_store_durability_info{level="memory"} 1.0' in lines

    status, _, body = get(port, "/status.json")
    data = json.loads(body)
    assert data["counters"]["completed"] == 3 and data["jobs"] == 1
    assert data["store"]["durability"] == "memory"
    assert {f["function"] for f in data["functions"]} == {"ok", "<idle&fn>"}

    status, ctype, page = get(port, "/")
    assert status == 200 and ctype.startswith("text/html")
    assert "&lt;idle&amp;fn&gt;" in page and "<idle&fn>" not in page


def test_unknown_paths_and_methods(metered: tuple[ServerProc, int]) -> None:
    _, port = metered
    assert get(port, "/nope")[0] == 404
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    caught.value.close()
    assert caught.value.code == 405
