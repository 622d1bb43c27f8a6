"""The accounting of a run under faults: what was acknowledged, what ran, when the
faults were, and what of that breaks a promise.

Times are Unix times (``time.time()``), the one clock the harness, its PHP
clients and worker processes share.  The promises:

- every background job whose submission was acknowledged runs to completion;
- a job runs more than once only when a fault coincided with one of its runs:
  all its runs but one were running, or finished but perhaps not yet
  acknowledged to the store, when a fault began on the server that ran them;
- after a fault the server accepts submissions again; where a fault promises
  it, once it has, it refuses none (``QUEUE_ERROR``) until the next fault.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

OK, QUEUE_ERROR, FAILED = "ok", "queue_error", "failed"
"""A submission's outcome: acknowledged, refused by the server with ``QUEUE_ERROR``,
or not answered (server down, connection lost, timeout)."""


@dataclass
class Run:
    """One run of a job by a worker of the server at ``where`` (its port)."""

    job: str
    where: int
    start: float
    end: float | None = None
    """None: its worker never finished it (the worker was killed)."""


@dataclass
class Fault:
    """A fault on the servers at ``targets``, from ``began`` to ``ended``."""

    kind: str
    targets: tuple[int, ...]
    began: float
    ended: float = 0.0
    settle: float = 0.0
    """A run a target started up to this long after ``began`` was handed out
    before the fault took hold (the ledger's grace unless given: a cut-off
    cluster member may start the jobs it holds until its lease's deadline)."""
    holds_acks: bool = False
    """The store was out of reach: what finished during it was acknowledged
    only at the end."""
    keeps_accepting: bool = False
    """Promised: once a target accepts submissions again, it refuses none (with
    ``QUEUE_ERROR``) until the next fault."""
    notes: dict[str, object] = field(default_factory=dict)


@dataclass
class Submission:
    port: int
    start: float
    end: float
    outcome: str


class Ledger:
    """Everything one run records, and the check."""

    def __init__(self, grace: float = 2.0) -> None:
        self.grace = grace
        """Seconds a finished job's completion may take to reach the store."""
        self.acked: dict[str, float] = {}
        self.runs: list[Run] = []
        self.faults: list[Fault] = []
        self.submissions: list[Submission] = []

    # -- recording --

    def submitted(
        self, port: int, job: str, start: float, outcome: str, end: float | None = None
    ) -> None:
        end = time.time() if end is None else end
        self.submissions.append(Submission(port, start, end, outcome))
        if outcome == OK:
            self.acked[job] = end

    def started(self, job: str, where: int) -> Run:
        run = Run(job, where, time.time())
        self.runs.append(run)
        return run

    def fault(self, kind: str, targets: tuple[int, ...], **kw: object) -> Fault:
        kw.setdefault("settle", self.grace)
        fault = Fault(kind, targets, time.time(), **kw)  # type: ignore[arg-type]
        self.faults.append(fault)
        return fault

    def read_worker_log(self, path: Path, where: int) -> None:
        """Add the runs a worker process logged: lines ``S JOB TIME`` at each start and
        ``E JOB TIME`` at each end (one write each, so whole lines survive a SIGKILL)."""
        open_runs: dict[str, Run] = {}
        for line in path.read_text().splitlines():
            kind, job, stamp = line.split()
            if kind == "S":
                open_runs[job] = Run(job, where, float(stamp))
                self.runs.append(open_runs[job])
            elif job in open_runs:
                open_runs.pop(job).end = float(stamp)

    # -- the check --

    def completed(self) -> set[str]:
        return {r.job for r in self.runs if r.end is not None}

    def lost(self) -> list[str]:
        done = self.completed()
        return [job for job in self.acked if job not in done]

    def acknowledged_by(self, run: Run) -> float:
        """When the run's completion reached the store, at the latest."""
        if run.end is None:
            return float("inf")
        end = run.end
        for f in self.faults:
            if f.holds_acks and run.where in f.targets and f.began <= end <= f.ended:
                end = f.ended
        return end + self.grace

    def coinciding(self, run: Run) -> Fault | None:
        """The fault that was running this run, or had it unacknowledged, if any."""
        if run.end is None:
            return Fault("worker killed", (run.where,), run.start)
        acked = self.acknowledged_by(run)
        for f in self.faults:
            if run.where in f.targets and run.start <= f.began + f.settle and acked >= f.began:
                return f
        return None

    def twice(self) -> list[dict[str, object]]:
        """Each job that ran more than once: its runs, and whether all but one of them
        coincided with a fault."""
        by_job: dict[str, list[Run]] = {}
        for r in self.runs:
            by_job.setdefault(r.job, []).append(r)
        out = []
        for job, runs in by_job.items():
            if len(runs) < 2:
                continue
            faults = [self.coinciding(r) for r in runs]
            explained = sum(f is not None for f in faults) >= len(runs) - 1
            out.append(
                {
                    "job": job,
                    "coincided": explained,
                    "faults": sorted({f.kind for f in faults if f is not None}),
                    "runs": [{"where": r.where, "start": r.start, "end": r.end} for r in runs],
                }
            )
        return out

    def recovery(self, fault: Fault, until: float) -> tuple[float | None, int]:
        """Seconds from the fault's end until every target acknowledged a submission
        sent after it (None: not before ``until``), and the ``QUEUE_ERROR`` refusals
        of submissions started after that, before ``until``."""
        back = []
        for port in fault.targets:
            after = [
                s.end
                for s in self.submissions
                if s.port == port and s.outcome == OK and fault.ended <= s.start < until
            ]
            if not after:
                return None, 0
            back.append(min(after))
        since = max(back)
        refused = sum(
            1
            for s in self.submissions
            if s.port in fault.targets and s.outcome == QUEUE_ERROR and since <= s.start < until
        )
        return since - fault.ended, refused

    def report(self, recover_within: float, end: float) -> dict[str, object]:
        """The figures, and ``failures``: each broken promise in a line."""
        lost = self.lost()
        twice = self.twice()
        unexplained = [t["job"] for t in twice if not t["coincided"]]
        failures = []
        if lost:
            failures.append(f"{len(lost)} acknowledged job(s) never ran: {lost[:10]}")
        if unexplained:
            failures.append(
                f"{len(unexplained)} job(s) ran twice with no fault: {unexplained[:10]}"
            )
        faults = []
        for i, f in enumerate(self.faults):
            until = self.faults[i + 1].began if i + 1 < len(self.faults) else end
            seconds, refused = self.recovery(f, until)
            if seconds is None or seconds > recover_within:
                failures.append(
                    f"{f.kind} at {f.began:.1f}: submissions not accepted again within"
                    f" {recover_within:.0f} s of its end"
                )
            elif refused and f.keeps_accepting:
                failures.append(
                    f"{f.kind} at {f.began:.1f}: {refused} submission(s) refused after the"
                    f" server accepted them again"
                )
            faults.append(
                {
                    "kind": f.kind,
                    "targets": list(f.targets),
                    "began": f.began,
                    "seconds": round(f.ended - f.began, 2),
                    "recovery_s": None if seconds is None else round(seconds, 2),
                    "refused_after_recovery": refused,
                    **f.notes,
                }
            )
        outcomes = [s.outcome for s in self.submissions]
        return {
            "ok": not failures,
            "failures": failures,
            "acknowledged": len(self.acked),
            "ran": len(self.completed() & self.acked.keys()),
            "lost": len(lost),
            "ran_twice": len(twice),
            "ran_twice_at_a_fault": len(twice) - len(unexplained),
            "refused_queue_error": outcomes.count(QUEUE_ERROR),
            "refused_other": outcomes.count(FAILED),
            "faults": faults,
            "twice": twice,
        }
