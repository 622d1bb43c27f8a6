"""Across a PostgreSQL failover, ``/readyz``, ``/metrics`` and the console's
status say whether the store takes writes and which host is its primary: a
single server (its writes show it) and a cluster member (its heartbeat does)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

import serverproc
from console.conftest import Console
from geartrain.protocol import PacketType
from gt_helpers import wait_for
from serverproc import free_port
from wire import Wire

from .replicas import HOST, PostgresReplicas

pytestmark = [pytest.mark.backend, pytest.mark.timeout(120)]


@pytest.fixture
def replicas() -> Iterator[PostgresReplicas]:
    pair = PostgresReplicas(sync=True).start()
    yield pair
    pair.cleanup()


def readyz(console: Console) -> tuple[int, str]:
    status, _, body = console.request("GET", "/readyz")
    return status, body.decode()


def metric(console: Console, name: str) -> dict[str, float]:
    """Each sample of ``name``: its labels as written, and its value."""
    text = console.request("GET", "/metrics")[2].decode()
    found = re.findall(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
    return {labels: float(value) for labels, value in found}


def submitted(port: int) -> bool:
    """A background submission, acknowledged (else refused: QUEUE_ERROR)."""
    with Wire(port) as conn:
        conn.send(PacketType.SUBMIT_JOB_BG, b"f", b"", b"x")
        return conn.read().type == PacketType.JOB_CREATED


@pytest.mark.parametrize("cluster", [False, True], ids=["single", "cluster"])
async def test_the_store_state_and_its_primary_across_a_failover(
    replicas: PostgresReplicas, cluster: bool
) -> None:
    primary, standby = (f"{HOST}:{port}" for port in replicas.ports)
    flags = ["-q", "postgres", "--libpq-conninfo", replicas.conninfo("test")]
    flags += ["--cluster", "--cluster-lease", "3"] if cluster else ["--durability", "power"]
    console_port = free_port()
    server = serverproc.start_geartrain([*flags, "--console-port", str(console_port)])
    console = Console(server, console_port)
    try:
        assert submitted(server.port)
        assert readyz(console) == (200, f"ready (store primary {primary})\n")
        assert metric(console, "geartrain_store_primary_info") == {f'{{host="{primary}"}}': 1}
        assert metric(console, "geartrain_store_up") == {"": 1}
        assert console.get("/api/status")["store"]["primary"] == primary

        replicas.kill_primary()
        # The single server learns it from a write; a member from its heartbeat.
        await wait_for(lambda: not submitted(server.port) and readyz(console)[0] == 503, 30)
        assert readyz(console)[1].startswith("not ready: queue store failing: ")
        assert metric(console, "geartrain_store_up") == {"": 0}
        assert metric(console, "geartrain_store_state")['{state="failing"}'] == 1
        assert console.get("/api/status")["store"]["up"] is False

        replicas.promote()
        await wait_for(lambda: submitted(server.port) and readyz(console)[0] == 200, 30)
        assert readyz(console) == (200, f"ready (store primary {standby})\n")
        assert metric(console, "geartrain_store_primary_info") == {f'{{host="{standby}"}}': 1}
        assert metric(console, "geartrain_store_up") == {"": 1}
        assert console.get("/api/status")["store"]["primary"] == standby
    finally:
        server.cleanup()
