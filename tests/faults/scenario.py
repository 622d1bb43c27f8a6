"""A fault run from start to report: a topology under load, faults one after
another (each waited out until the servers accept submissions again), a steady
end, the drain, and the ledger's check.  scripts/faults.py runs it for minutes;
tests/faults/test_faults.py runs each fault once on each topology it applies to.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass, field

from .inject import FAULTS, INJECT, applies
from .ledger import Fault, Ledger
from .load import Load
from .topology import StoreServer, Topology


@dataclass
class Plan:
    topology: str
    faults: tuple[str, ...]
    seconds: float = 60.0
    """How long faults are injected (the steady end comes after)."""
    rounds: int = 0
    """Stop injecting after this many faults (0: no limit)."""
    fault_every: float = 8.0
    """Mean seconds between the recovery from one fault and the next fault."""
    steady: float = 5.0
    members: int = 2
    rate: float = 50.0
    """Submissions per second per client (two clients per server)."""
    pad: int = -1
    """Bytes of padding per job; -1: 16 KiB where the SQLite queue's log files must
    turn over within seconds (``disk-full``, ``user``), else none."""
    php: bool = True
    disk_mb: int = 24
    """The tmpfs of ``disk-full``: three of the queue's 8 MiB log files."""
    durability: str = ""
    """``--durability`` of a SQLite queue ("" for the default)."""
    grace: float = 2.0
    recover_within: float = 60.0
    drain_timeout: float = 120.0
    seed: int = field(default_factory=lambda: random.randrange(1 << 30))

    def __post_init__(self) -> None:
        for fault in self.faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
            if not applies(fault, self.topology):
                raise ValueError(f"{fault} does not apply to {self.topology}")
        if self.pad < 0:
            self.pad = 16384 if {"disk-full", "user"} & set(self.faults) else 0


async def run(plan: Plan, store_server: StoreServer | None = None) -> dict[str, object]:
    """Run ``plan``; the report (see Ledger.report) with the plan, the times and,
    when a promise broke, the end of each server's log."""
    rng = random.Random(plan.seed)
    args = ("--durability", plan.durability) if plan.durability else ()
    topo = Topology(
        plan.topology,
        members=plan.members,
        store_server=store_server,
        proxy="cut" in plan.faults,
        disk_mb=plan.disk_mb if "disk-full" in plan.faults else 0,
        user="user" in plan.faults,
        server_args=args,
    )
    ledger = Ledger(plan.grace)
    started = time.time()
    load: Load | None = None
    try:
        await topo.start()
        load = Load(
            ledger,
            topo.ports,
            rate=plan.rate,
            php=plan.php,
            pad=plan.pad,
            slow=topo.ports[:1] if "stop" in plan.faults else (),
        )
        await load.start()
        await _inject(plan, topo, load, rng)
        await _sleep(plan.steady)
        down = [s.port for s in topo.servers if s.proc is None or s.proc.poll() is not None]
        left = await load.stop(0 if down else plan.drain_timeout)
        report = ledger.report(plan.recover_within, time.time())
        failures: list[str] = report["failures"]  # type: ignore[assignment]
        if down:
            failures.append(f"server(s) not running at the end: {down}")
        elif left:
            failures.append(f"not drained within {plan.drain_timeout:.0f} s: {left}")
        failures += topo_failures(topo)
        report["ok"] = not failures
        if failures:
            report["logs"] = {port: log[-3000:] for port, log in topo.logs().items()}
    finally:
        if load is not None and not load.stopping:  # the run broke off: no drain
            await load.stop(0)
        await topo.stop()
    report.update(
        topology=plan.topology, seconds=round(time.time() - started, 1), plan=asdict(plan)
    )
    return report


async def _inject(plan: Plan, topo: Topology, load: Load, rng: random.Random) -> None:
    ledger = load.ledger
    end = time.time() + plan.seconds
    order: list[str] = []
    while not plan.rounds or len(ledger.faults) < plan.rounds:
        gap = plan.fault_every * rng.uniform(0.5, 1.5)
        if time.time() + gap >= end:
            break
        await _sleep(gap)
        if not order:  # each fault once per cycle, in a new order each time
            order = rng.sample(plan.faults, len(plan.faults))
        fault = await INJECT[order.pop()](topo, load, rng)
        await _recovered(ledger, fault, plan.recover_within)
    await _sleep(end - time.time() if not plan.rounds else 0)


async def _recovered(ledger: Ledger, fault: Fault, within: float) -> None:
    deadline = time.monotonic() + within
    while "start_failed" not in fault.notes and time.monotonic() < deadline:
        if ledger.recovery(fault, time.time())[0] is not None:
            return
        await _sleep(0.2)


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(max(0.0, seconds))


def topo_failures(topo: Topology) -> list[str]:
    """Promises of ``--user``: the queue's files belong to the user, and no access to
    them was denied."""
    if topo.user is None:
        return []
    failures = []
    foreign = [p for p in topo.state.rglob("*") if p.owner() != topo.user.pw_name]
    if foreign:
        names = ", ".join(f"{p.relative_to(topo.state)} ({p.owner()})" for p in foreign[:5])
        failures.append(f"{len(foreign)} file(s) of the state directory not the user's: {names}")
    denied = sum(log.count("Permission denied") for log in topo.logs().values())
    if denied:
        failures.append(f"{denied} 'Permission denied' line(s) in the server's log")
    return failures
