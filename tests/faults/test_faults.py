"""The fault suite, bounded: each fault once on each topology it applies to, under
geartrain and PHP clients and geartrain workers (scripts/faults.py runs the same
for minutes; docs/development.md has its figures).

What holds under every fault: no acknowledged background job is lost; a job runs
twice only when it was running, or finished but not yet acknowledged, at the
fault on the server that ran it; the servers accept submissions again after
the fault (after a full disk, refusing none from then on).  The stores are
private servers of this module (a Redis with an fsync-always AOF, a PostgreSQL
from initdb), since a fault may kill them; each test has its own key prefix or
database.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest

from .inject import FAULTS, applies
from .scenario import Plan, run
from .topology import TOPOLOGIES, StoreServer, start_store_server

pytestmark = [pytest.mark.slow, pytest.mark.backend, pytest.mark.interop, pytest.mark.timeout(300)]

CASES = [
    pytest.param(topology, fault, id=f"{fault}-{topology}")
    for fault in FAULTS
    for topology in TOPOLOGIES
    if applies(fault, topology)
]

STEADY = {"disk-full": 12.0, "user": 8.0}
"""Seconds of load after the fault (default 4): where the SQLite queue must turn
over its log files a few times once the fault is over."""


@pytest.fixture(scope="module")
def store_servers() -> Iterator[Callable[[str], StoreServer]]:
    """``get("redis")`` or ``get("postgres")``: the module's private store of that
    kind, started at first use and stopped after the module."""
    started: dict[str, StoreServer] = {}

    def get(kind: str) -> StoreServer:
        if kind not in started:
            started[kind] = start_store_server(kind)
        return started[kind]

    yield get
    for server in started.values():
        server.cleanup()


@pytest.mark.parametrize(("topology", "fault"), CASES)
async def test_a_fault_loses_no_job_and_repeats_only_what_it_interrupted(
    topology: str,
    fault: str,
    store_servers: Callable[[str], StoreServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, "geartrain")  # clients and workers retry through the fault
    kind = topology.split("-")[1]
    store = None if kind == "sqlite" else store_servers(kind)
    plan = Plan(
        topology,
        (fault,),
        rounds=1,
        fault_every=4.0,
        steady=STEADY.get(fault, 4.0),
        drain_timeout=90.0,
    )
    report = await run(plan, store)
    faults = report["faults"]
    assert isinstance(faults, list)
    [done] = faults
    print(
        f"\n{fault} on {topology}: {report['acknowledged']} acknowledged, {report['lost']} lost,"
        f" {report['ran_twice']} ran twice ({report['ran_twice_at_a_fault']} at the fault),"
        f" {report['refused_queue_error']} refused (QUEUE_ERROR), recovery {done['recovery_s']} s"
    )
    shown = {k: v for k, v in report.items() if k != "plan"}
    assert report["ok"], json.dumps(shown, indent=1)[:12000]
    assert report["acknowledged"] > 100  # type: ignore[operator]
    # The fault took hold as planned.
    if fault == "stop":
        assert done["claimed_at_stop"] > 0, "the member held no claimed job when it stopped"
    if fault == "disk-full":
        assert done["refused_while_full"] > 0, "the server never refused while the disk was full"
