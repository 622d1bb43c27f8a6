"""The rescue of a dead member's jobs, by the rule a single server applies.

When a member's lease expires, the jobs it had claimed are orphans.  One member
at a time sweeps (PostgreSQL's advisory lock; on Redis a key set with ``NX``
that expires): it fetches the orphans, counts the death as a lost worker's
attempt of each (one more retry and failure, a ``worker_lost`` outcome), and
asks :func:`geartrain.server.retries.decide`, with the function's policy and
``--job-retries``, what becomes of it, as the core does when a worker is lost
on a single server: it runs again after the policy's backoff, or at once, or
it failed for good and moves to the failed set (or is deleted, where the
policy says ``keep_failed = false``).  The store holds no retry rule.

Each outcome is written with the store's fenced operations: a job claimed again
since is not touched.  A member that dies mid-sweep leaves the rest as they
were, claimed by a member that is not alive, for the next sweep; a dead member
leaves the store once nothing claimed by it is left.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from ..retry import stored as stored_retry
from ..server.retries import Next, add_outcome, decide
from ..store.records import Attempt, decode_outcomes, encode_outcomes
from . import Failure, Orphan, Retry
from .backend import MAX_BATCH

if TYPE_CHECKING:
    from ..server.policies import Policies
    from .backend import ClusterBackend

__all__ = ["REASON", "Plan", "Rescued", "plan", "rescue"]

log = logging.getLogger("geartrain.cluster")

REASON = "worker_lost: its server stopped renewing its lease"
"""Why an orphan that failed for good did (its failed-set record's reason)."""


@dataclass
class Plan:
    """What becomes of the orphans of one sweep."""

    retries: list[Retry] = field(default_factory=list)
    """Queued again: after the policy's backoff, or at once (a lost worker that
    ``--job-retries`` allows)."""
    failures: list[Failure] = field(default_factory=list)
    """Failed for good: to the failed set."""
    deleted: list[tuple[int, int]] = field(default_factory=list)
    """(id, claim) of those failed for good that the policy does not keep."""
    past_limit: int = 0
    """How many of the failures are past ``--job-retries``."""


class Rescued(NamedTuple):
    """One sweep's counts."""

    dead: int
    """Members found dead."""
    queued: int
    """Their jobs queued again."""
    failed: int
    """Their jobs failed for good."""


def plan(
    orphans: Sequence[Orphan],
    policies: Policies,
    job_retries: int,
    now: float,
    rand: Callable[[], float] = random.random,
) -> Plan:
    """Each orphan's fate after its member's death at epoch second ``now``."""
    out = Plan()
    for o in orphans:
        retries, failures = o.retries + 1, o.failures + 1
        lost = Attempt("worker_lost", f"server {o.owner} stopped renewing its lease", "-", now)
        outcomes = encode_outcomes(add_outcome(decode_outcomes(o.outcomes), lost))
        policy = policies.for_job(o.function, None, stored_retry(o.retry))
        decision = decide(
            policy,
            "worker_lost",
            failures,
            retries,
            job_retries=job_retries,
            rand=rand,
        )
        if decision.next in (Next.RETRY, Next.REQUEUE):
            out.retries.append(Retry(o.id, o.claim, retries, failures, outcomes, decision.delay))
        elif policy.keep_failed:
            out.failures.append(Failure(o.id, o.claim, failures, outcomes, REASON))
            out.past_limit += decision.next is Next.DROP
        else:
            out.deleted.append((o.id, o.claim))
    return out


async def rescue(
    backend: ClusterBackend, ttl: float, policies: Policies, job_retries: int, now: float
) -> Rescued | None:
    """Sweep for members whose lease expired and rescue their jobs (:func:`plan`),
    the sweep held at most ``ttl`` seconds; None if another member is sweeping."""
    found = await backend.orphans(ttl)
    if found is None:
        return None
    dead, orphans = found
    try:
        fate = plan(orphans, policies, job_retries, now)
        owners = sorted({o.owner for o in orphans})
        for i in range(0, len(orphans), MAX_BATCH):
            if retries := fate.retries[i : i + MAX_BATCH]:
                await backend.retry(retries, owners)
            if failures := fate.failures[i : i + MAX_BATCH]:
                await backend.fail(failures, owners)
            if deleted := fate.deleted[i : i + MAX_BATCH]:
                await backend.ack(deleted, owners)
    finally:
        await backend.swept(dead)
    rescued = Rescued(len(dead), len(fate.retries), len(fate.failures) + len(fate.deleted))
    if any(rescued):
        _report(rescued, fate)
    return rescued


def _report(rescued: Rescued, fate: Plan) -> None:
    said = [f"{rescued.queued} job(s) queued again"] if rescued.queued else []
    if fate.past_limit:
        said.append(f"{fate.past_limit} past --job-retries moved to the failed set")
    if spent := len(fate.failures) - fate.past_limit:
        said.append(f"{spent} out of attempts moved to the failed set")
    if fate.deleted:
        said.append(f"{len(fate.deleted)} failed for good, not kept (keep_failed = false)")
    log.warning(
        "Took over from %d dead server(s)%s", rescued.dead, ": " + ", ".join(said) if said else ""
    )
