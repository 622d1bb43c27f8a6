"""PostgreSQL failover, bounded: a primary and a synchronous standby made by the
test (replicas.py), servers naming both in a multi-host URL with
``target_session_attrs=read-write``, a load of Python and PHP clients and
workers; the primary is killed (SIGKILL) and the standby promoted by hand.

What holds: no acknowledged job is lost (the standby had each commit before it
was acknowledged); a job runs twice only where the failover interrupted it;
the servers find the new primary and accept submissions again without a
restart (the drill's report: within its ``recover_within``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from .drill import Drill, run, summary
from .replicas import PostgresReplicas

pytestmark = [pytest.mark.slow, pytest.mark.backend, pytest.mark.interop, pytest.mark.timeout(180)]


@pytest.fixture
def replicas() -> Iterator[PostgresReplicas]:
    pair = PostgresReplicas(sync=True).start()
    yield pair
    pair.cleanup()


@pytest.mark.parametrize(
    ("topology", "durability"),
    [("single-postgres", "power"), ("cluster-postgres", "")],
    ids=["single", "cluster"],
)
async def test_failover_to_a_synchronous_standby_loses_no_acknowledged_job(
    replicas: PostgresReplicas,
    topology: str,
    durability: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, "geartrain")  # clients and workers retry through it
    report = await run(Drill(topology, members=3, durability=durability), replicas)
    print(f"\nfailover on {topology}: {summary(report)}")
    shown = {k: v for k, v in report.items() if k != "drill"}
    assert report["ok"], json.dumps(shown, indent=1)[:12000]
    assert report["lost"] == 0
    assert report["acknowledged"] > 100  # type: ignore[operator]
