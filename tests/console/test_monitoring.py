"""The monitoring that ships in monitoring/: the alerting rules fire in a real
Prometheus scraping real servers whose trouble is real (a function nobody works
on, a worker that fails, a disk that fills, a cluster member killed), and every
query of the Grafana dashboard runs there and names only metrics the server
exports.  The test's copy of the rules waits 1 s instead of minutes (``for``)
and looks back seconds instead of minutes (:data:`FAST`)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.conftest import RedisShared
from geartrain import Admin, Client, JobFailed, Worker
from gt_helpers import take_the_rest, wait_for, working
from serverproc import ServerProc, free_port
from store.conftest import database_services  # noqa: F401  (Redis for the cluster)
from wire import T, Wire

from .conftest import Console

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

MONITORING = Path(__file__).parents[2] / "monitoring"
RULES = MONITORING / "prometheus" / "alerts.yml"
DASHBOARD = MONITORING / "grafana" / "geartrain.json"

FAST = {
    "GeartrainBacklogGrowing": {"> 600": "> 3", "[30m]": "[20s]"},
    "GeartrainJobsFailing": {"[5m]": "[20s]"},
}
"""Per alert, what the test's copy of its expression says instead."""


def fast_rules() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "1s"
            for old, new in FAST.get(rule["alert"], {}).items():
                assert old in rule["expr"], (rule["alert"], old)
                rule["expr"] = rule["expr"].replace(old, new)
    return rules


class PrometheusServer:
    """A prometheus of the test's own on a free loopback port, scraping the given
    console ports every second as the job "geartrain", with the fast rules."""

    def __init__(self, targets: list[int]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gt-prom-"))
        (self.dir / "rules.yml").write_text(yaml.safe_dump(fast_rules()))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.dir / "rules.yml")],
            "scrape_configs": [
                {
                    "job_name": "geartrain",
                    "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in targets]}],
                }
            ],
        }
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.log = open(self.dir / "prometheus.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while not self._ready():
            assert self.proc.poll() is None, (self.dir / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5):
                return True
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}{query}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            answer = json.load(reply)
        assert answer["status"] == "success", answer
        return answer["data"]

    def firing(self, alert: str) -> list[dict[str, str]]:
        """The labels of each firing instance of ``alert``."""
        return [
            a["labels"]
            for a in self.api("alerts")["alerts"]
            if a["labels"]["alertname"] == alert and a["state"] == "firing"
        ]

    async def fires(self, alert: str, **labels: str) -> dict[str, str]:
        """Wait until ``alert`` fires with these labels; its labels."""

        def matching() -> list[dict[str, str]]:
            return [a for a in self.firing(alert) if labels.items() <= a.items()]

        await wait_for(lambda: bool(matching()), timeout=120, interval=0.5)
        return matching()[0]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def prometheus() -> Iterator[Callable[..., PrometheusServer]]:
    started: list[PrometheusServer] = []

    def start(*consoles: Console) -> PrometheusServer:
        started.append(PrometheusServer([c.port for c in consoles]))
        started[-1].wait_ready()
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_promtool_accepts_the_rules() -> None:
    checked = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0 and "SUCCESS: 7 rules found" in checked.stdout, checked


async def test_a_function_without_workers_and_its_growing_backlog(
    console: Console, prometheus: Callable[..., PrometheusServer]
) -> None:
    prom = prometheus(console)
    address = console.server.address
    worker = Worker([address])
    worker.register("served", lambda job: b"done")
    async with Admin([address]) as admin:
        await admin.pause("held")  # its backlog waits on purpose: only the pause alert
    async with Client([address]) as client, working(worker, "served"):

        async def submit() -> None:  # one job a second for the backlogs to grow
            while True:
                await client.submit_background("nobody", b"x")
                await client.submit_background("held", b"x")
                await client.submit_background("served", b"x")
                await asyncio.sleep(1)

        submitting = asyncio.create_task(submit())
        try:
            without = await prom.fires("GeartrainFunctionWithoutWorkers", function="nobody")
            growing = await prom.fires("GeartrainBacklogGrowing", function="nobody")
            paused = await prom.fires("GeartrainFunctionPaused", function="held")
        finally:
            submitting.cancel()
    assert without["instance"] == growing["instance"] == f"127.0.0.1:{console.port}"
    assert paused["instance"] == without["instance"]
    for alert in ("GeartrainFunctionWithoutWorkers", "GeartrainBacklogGrowing"):
        assert [a["function"] for a in prom.firing(alert)] == ["nobody"]
    assert [a["function"] for a in prom.firing("GeartrainFunctionPaused")] == ["held"]


async def test_failing_jobs(console: Console, prometheus: Callable[..., PrometheusServer]) -> None:
    prom = prometheus(console)
    address = console.server.address
    worker = Worker([address])
    worker.register("flaky", lambda job: job.fail())
    worker.register("fine", lambda job: b"ok")
    async with Client([address]) as client, working(worker, "flaky", "fine"):

        async def submit() -> None:
            while True:
                with pytest.raises(JobFailed):
                    await client.submit("flaky", b"x", timeout=10)
                await client.submit("fine", b"x", timeout=10)
                await asyncio.sleep(0.2)

        submitting = asyncio.create_task(submit())
        try:
            await prom.fires("GeartrainJobsFailing", function="flaky")
        finally:
            submitting.cancel()
    assert [a["function"] for a in prom.firing("GeartrainJobsFailing")] == ["flaky"]


async def test_a_full_store(
    small_disk: Callable[[str], Path],
    start_server: Callable[..., ServerProc],
    prometheus: Callable[..., PrometheusServer],
) -> None:
    disk, port = small_disk("8m"), free_port()
    queue = ["-q", "libsqlite3", f"--libsqlite3-db={disk / 'queue.sqlite3'}"]
    console = Console(start_server("geartrain", [*queue, f"--console-port={port}"]), port)
    prom = prometheus(console)
    take_the_rest(disk)
    with Wire(console.server.port, timeout=10) as conn:
        for i in range(100_000):  # the rest of a file allocated earlier takes a few
            conn.send(T.SUBMIT_JOB_BG, b"f", b"", b"job %d" % i)
            if conn.read().type == T.ERROR:
                break
    alert = await prom.fires("GeartrainStoreNotReady")
    assert alert["state"] == "full"


async def test_a_cluster_without_workers_and_a_member_killed(
    start_server: Callable[..., ServerProc], prometheus: Callable[..., PrometheusServer]
) -> None:
    shared = RedisShared()
    try:
        members = []
        for _ in range(2):
            port = free_port()
            flags = [*shared.flags(), "--cluster", "--cluster-lease", "2", f"--console-port={port}"]
            members.append(Console(start_server("geartrain", flags), port))
        prom = prometheus(*members)
        first, second = (m.server.address for m in members)
        worker = Worker([second])
        worker.register("served", lambda job: b"done")
        async with Client([first]) as client, working(worker, "served"):
            await client.submit_background("nobody", b"x")  # waits in the shared store
            await client.submit_background("served", b"x")  # run by the other member
            without = await prom.fires("GeartrainFunctionWithoutWorkers", function="nobody")
            assert without["job"] == "geartrain" and "instance" not in without
            assert [a["function"] for a in prom.firing("GeartrainFunctionWithoutWorkers")] == [
                "nobody"
            ]

        def counted() -> bool:
            found = prom.api("query", query="min(geartrain_cluster_members)")["result"]
            return bool(found) and found[0]["value"][1] == "2"

        await wait_for(counted, timeout=60, interval=0.5)
        assert not prom.firing("GeartrainClusterMemberMissing")
        members[1].server.kill()
        missing = await prom.fires("GeartrainClusterMemberMissing", job="geartrain")
        down = await prom.fires("GeartrainDown")
        assert down["instance"] == f"127.0.0.1:{members[1].port}"
        alerts = prom.api("alerts")["alerts"]
        [value] = [a["value"] for a in alerts if a["labels"] == missing]
        assert float(value) == 1
    finally:
        shared.cleanup()


METRIC = re.compile(r"\b((?:geartrain|gearman|process)_\w+)")
CLUSTER_ONLY = {
    "geartrain_cluster_members",
    "geartrain_cluster_jobs",
    "geartrain_cluster_jobs_running",
}
"""Exported by cluster members only (see test_a_cluster_without_workers_and_a_member_killed)."""


async def test_the_dashboard_queries_what_the_server_exports(
    start_server: Callable[..., ServerProc],
    tmp_path: Path,
    prometheus: Callable[..., PrometheusServer],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for p in panels)
    queries = [t["expr"] for p in panels for t in p["targets"]]
    queries += [v["query"] for v in variables.values() if v["type"] == "query"]

    port = free_port()
    queue = ["-q", "libsqlite3", f"--libsqlite3-db={tmp_path / 'queue.sqlite3'}"]
    console = Console(start_server("geartrain", [*queue, f"--console-port={port}"]), port)
    prom = prometheus(console)
    address = console.server.address
    worker = Worker([address])
    worker.register("f", lambda job: b"done")
    worker.register("bad", lambda job: job.fail())
    async with Client([address]) as client, working(worker, "f", "bad"):
        await client.submit("f", b"x", timeout=10)
        await client.submit_background("bad", b"x")

        def scraped() -> bool:
            query = 'geartrain_jobs_failed_stored{function="bad"} == 1'
            return bool(prom.api("query", query=query)["result"])

        await wait_for(scraped, timeout=60, interval=0.5)
    metrics = console.request("GET", "/metrics")[2].decode()
    exported = set(re.findall(r"^(\w+)", metrics, re.M)) | CLUSTER_ONLY
    grafana = {"$instance": ".*", "$function": ".*", "$__rate_interval": "1m"}
    for query in queries:
        named = set(METRIC.findall(query))
        assert named and named <= exported, (query, named - exported)
        for variable, value in grafana.items():
            query = query.replace(variable, value)
        label_values = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        if label_values is not None:
            metric, label = label_values.groups()
            assert prom.api(f"label/{label}/values", **{"match[]": metric}), query
        else:
            prom.api("query", query=query)  # parses and runs
