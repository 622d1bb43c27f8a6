"""The failover drill: servers on a replicated store under a load of Python and
PHP clients and workers; the primary is killed (SIGKILL), the standby promoted
after an operator's reaction time; then the ledger's counts (acknowledged, lost,
ran twice, refused) and the seconds from the kill until every server accepts
submissions again.  scripts/ha_drill.py runs it at length and prints the
figures; test_*.py here run it bounded.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Protocol

from faults.ledger import Ledger
from faults.load import Load
from faults.scenario import _recovered
from faults.topology import LEASE, Topology
from geartrain.cluster.lease import TRUST


class Replicas(Protocol):
    """A replicated store (replicas.py): started, then failed over once."""

    port: int

    def behind(self) -> int | None: ...

    def kill_primary(self) -> None: ...

    def promote(self) -> None: ...

    def cleanup(self) -> None: ...


@dataclass
class Drill:
    topology: str
    """``single-postgres`` or ``cluster-postgres`` (faults.topology's names)."""
    members: int = 3
    before: float = 4.0
    """Seconds of load before the kill."""
    promote_after: float = 1.0
    """The operator's reaction time: seconds from the kill to the promotion
    (0: the store promotes by itself, as Sentinel does; the drill waits)."""
    after: float = 4.0
    """Seconds of load once submissions are accepted again."""
    rate: float = 50.0
    php: bool = True
    durability: str = ""
    recover_within: float = 60.0
    drain_timeout: float = 90.0


async def run(drill: Drill, replicas: Replicas) -> dict[str, object]:
    """Run the drill on ``replicas`` (started; failed over by the drill): the
    ledger's report with ``kill_to_accepting_s``, and the servers' logs when a
    promise broke."""
    args = ("--durability", drill.durability) if drill.durability else ()
    topo = Topology(drill.topology, members=drill.members, store_server=replicas, server_args=args)
    ledger = Ledger()
    load: Load | None = None
    started = time.time()
    try:
        await topo.start()
        load = Load(ledger, topo.ports, rate=drill.rate, php=drill.php)
        await load.start()
        samples = await _behind(replicas, drill.before)
        # What finishes during the outage is acknowledged to the store at its end;
        # a member may start what it holds until its lease's own deadline.
        settle = LEASE * TRUST + ledger.grace if topo.cluster else ledger.grace
        fault = ledger.fault("failover", topo.ports, holds_acks=True, settle=settle)
        if samples:  # how far behind the replica was while the load ran: the async window
            fault.notes["behind_bytes_max"] = max(samples)
            fault.notes["behind_bytes_mean"] = round(sum(samples) / len(samples))
        await asyncio.to_thread(replicas.kill_primary)
        await asyncio.sleep(drill.promote_after)
        await asyncio.to_thread(replicas.promote)
        fault.ended = time.time()
        await _recovered(ledger, fault, drill.recover_within)
        await asyncio.sleep(drill.after)
        left = await load.stop(drill.drain_timeout)
        report = ledger.report(drill.recover_within, time.time())
        failures: list[str] = report["failures"]  # type: ignore[assignment]
        if left:
            failures.append(f"not drained within {drill.drain_timeout:.0f} s: {left}")
        [done] = report["faults"]  # type: ignore[misc]
        if done["recovery_s"] is not None:
            done["kill_to_accepting_s"] = round(done["seconds"] + done["recovery_s"], 2)
        report["ok"] = not failures
        if failures:
            report["logs"] = {port: log[-3000:] for port, log in topo.logs().items()}
    finally:
        if load is not None and not load.stopping:
            await load.stop(0)
        await topo.stop()
    report.update(topology=drill.topology, seconds=round(time.time() - started, 1))
    report["drill"] = asdict(drill)
    return report


async def _behind(replicas: Replicas, seconds: float) -> list[int]:
    """Bytes the replica was behind, sampled every 0.1 s for ``seconds``."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        behind = await asyncio.to_thread(replicas.behind)
        if behind is not None:
            samples.append(behind)
        await asyncio.sleep(0.1)
    return samples


def summary(report: dict[str, object]) -> str:
    """One line of the figures."""
    [done] = report["faults"]  # type: ignore[misc]
    return (
        f"{report['acknowledged']} acknowledged, {report['lost']} lost,"
        f" {report['ran_twice']} ran twice ({report['ran_twice_at_a_fault']} at the failover),"
        f" {report['refused_queue_error']} refused (QUEUE_ERROR),"
        f" {report['refused_other']} unanswered; kill to accepting again:"
        f" {done.get('kill_to_accepting_s')} s (promoted after {done['seconds']} s);"
        f" the replica was {done.get('behind_bytes_mean')} bytes behind on average,"
        f" {done.get('behind_bytes_max')} at most"
    )
