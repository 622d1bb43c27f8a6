"""Redis Sentinel failover, bounded: a primary (fsync-always AOF), a replica and
three Sentinels made by the test (replicas.py); servers on a ``redis+sentinel``
URL with ``wait_replicas=1`` (``WAIT`` after each write), under a load of Python
and PHP clients and workers; the primary is killed (SIGKILL), the Sentinels
promote the replica, and the old primary comes back as a replica of it.

What holds: no acknowledged job is lost (each was on the replica before it was
acknowledged); a job runs twice only where the failover interrupted it; the
servers follow the new master without a restart and accept submissions again
once it has a replica for ``WAIT``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from .drill import Drill, run, summary
from .replicas import RedisSentinels

pytestmark = [pytest.mark.slow, pytest.mark.backend, pytest.mark.interop, pytest.mark.timeout(180)]


@pytest.fixture
def sentinels() -> Iterator[RedisSentinels]:
    replicas = RedisSentinels(wait=True).start()
    yield replicas
    replicas.cleanup()


@pytest.mark.parametrize("topology", ["single-redis", "cluster-redis"], ids=["single", "cluster"])
async def test_failover_with_wait_loses_no_acknowledged_job(
    sentinels: RedisSentinels, topology: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "geartrain")  # clients and workers retry through it
    report = await run(Drill(topology, members=3, promote_after=0.0), sentinels)
    print(f"\nfailover on {topology}: {summary(report)}")
    shown = {k: v for k, v in report.items() if k != "drill"}
    assert report["ok"], json.dumps(shown, indent=1)[:12000]
    assert report["lost"] == 0
    assert report["acknowledged"] > 100  # type: ignore[operator]
