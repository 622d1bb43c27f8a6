"""What happens after a failed attempt: the one decision, and the records it leaves.

:func:`decide` is a pure function of the function's policy, the job's counts
and how the attempt ended.  The core applies it to attempts on this server, and
a cluster member applies the same function to the running jobs of a member that
died, so both follow the function's policy and ``--job-retries`` alike.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, NamedTuple

from ..store.records import Attempt, FailedJob

if TYPE_CHECKING:
    from .model import Job
    from .policies import Policy

__all__ = [
    "MAX_OUTCOMES",
    "Decision",
    "Next",
    "add_outcome",
    "decide",
    "failed_record",
    "note_attempt",
]

MAX_OUTCOMES = 20
"""Attempts remembered per job (a worker that keeps dying under ``-j -1`` would add without end)."""


class Next(Enum):
    """What a job does after a failed attempt."""

    RETRY = "retry"
    """Runs again after the policy's backoff (``Decision.delay`` seconds)."""
    REQUEUE = "requeue"
    """Its worker was lost: queued again at once, as ``--job-retries`` allows."""
    FAIL = "fail"
    """Failed for good: its clients are told, a background job goes to the failed set."""
    DROP = "drop"
    """Past ``--job-retries``: failed for good, as gearmand drops it."""


class Decision(NamedTuple):
    next: Next
    delay: float = 0.0


def decide(
    policy: Policy,
    kind: str,
    failures: int,
    retries: int,
    *,
    job_retries: int,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """What the job does after an attempt that ended as ``kind`` ("fail",
    "exception", "worker_lost" or "timeout").

    ``failures`` counts failed attempts so far, this one included; ``retries``
    the times its worker (or its server) was lost, this time included;
    ``job_retries`` is ``--job-retries`` (gearmand 2.0: -1 without limit, 0 never,
    N allows N attempts).  Foreground and background jobs are retried alike: a
    waiting client is told nothing of a retried attempt and gets the outcome of
    the last one.  A lost worker that the policy does not retry is governed by
    ``--job-retries`` (gearmand's behaviour)."""
    retried = policy.retries(kind)
    if retried and failures < policy.attempts:
        return Decision(Next.RETRY, policy.delay(failures, rand))
    if kind != "worker_lost" or retried:
        return Decision(Next.FAIL)
    if job_retries == 0 or 0 < job_retries <= retries:
        return Decision(Next.DROP)
    return Decision(Next.REQUEUE)


def note_attempt(job: Job, kind: str, message: str, now: float) -> None:
    """Count a failed attempt of ``job`` and remember how it ended."""
    worker = job.worker
    name = "-"
    if worker is not None:
        name = (
            worker.host if worker.client_id == b"-" else worker.client_id.decode(errors="replace")
        )
    job.failures += 1
    job.outcomes = add_outcome(job.outcomes, Attempt(kind, message, name, now))


def add_outcome(outcomes: Sequence[Attempt], attempt: Attempt) -> tuple[Attempt, ...]:
    """``outcomes`` with ``attempt`` added, the oldest forgotten past :data:`MAX_OUTCOMES`."""
    return (*outcomes[1 - MAX_OUTCOMES :], attempt)


def failed_record(job: Job, kind: str, now: float) -> FailedJob:
    """The failed-set record of a job that failed for good; ``kind`` is the last
    attempt's outcome (its message is added) or a reason of its own."""
    last = job.outcomes[-1] if job.outcomes else None
    reason = f"{kind}: {last.message}" if last and last.kind == kind and last.message else kind
    return FailedJob(
        job.handle,
        job.function.name,
        job.unique,
        job.data,
        int(job.priority),
        job.failures,
        now,
        reason,
        tuple(job.outcomes),
    )
