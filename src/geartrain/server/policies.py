"""What the server does when a job fails: one policy per function.

A policy says how many attempts a job gets, how long to wait between them
(exponential backoff with jitter, from ``base`` up to ``cap`` seconds), which
outcomes are retried (``fail``: WORK_FAIL, ``exception``: WORK_EXCEPTION,
``worker_lost``: the worker disconnected or dropped the function,
``timeout``: its CAN_DO_TIMEOUT expired), a timeout for workers that did not
register one, whether background jobs that fail for good are kept in the
failed-job set, how long background jobs' results are kept
(``keep_results``, see :mod:`.results`); and how many jobs and bytes of job
data the function may hold (past them a submission is refused as a full
queue).  Policies come from the ``[defaults]`` and ``[functions]`` tables of the settings file
(:mod:`.settings`); functions match glob patterns, the first matching pattern
in file order wins.

Code may declare retry policies too (a :class:`~geartrain.retry.Retry`): a
worker per function, a client per submission, through the retries extension
(:mod:`.retry_extension`).  :meth:`Policies.for_job` is the one rule that says
which wins.

The built-in default retries nothing, so a server without a settings file
behaves as gearmand: WORK_FAIL is final and lost workers are governed by
``-j``; it keeps failed background jobs, which changes nothing on the wire.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..durations import parse_duration
from ..retry import OUTCOMES, Retry

__all__ = ["OUTCOMES", "Policies", "Policy", "policy_from_table"]


@dataclass(frozen=True, slots=True)
class Policy:
    """How one function's failed jobs are handled."""

    attempts: int = 1
    """Attempts in all, the first included; 1 means no retry."""
    retry_on: frozenset[str] = frozenset()
    """Outcomes that are retried while attempts remain.  A lost worker not listed
    here is requeued at once as ``-j`` says (gearmand's behaviour)."""
    backoff_base: float = 1.0
    """Seconds before the first retry; each further retry waits twice as long."""
    backoff_cap: float = 3600.0
    """The longest wait between two attempts, in seconds."""
    jitter: float = 0.25
    """Up to this fraction of the wait is added at random, so that jobs that
    failed together do not all come back at the same moment."""
    timeout: float = 0.0
    """Seconds a worker may run a job when it registered without CAN_DO_TIMEOUT; 0: no limit."""
    keep_failed: bool = True
    """Keep background jobs that failed for good in the failed-job set."""
    max_jobs: int | None = None
    """Jobs of the function held at once (queued, scheduled, running); 0: no limit,
    None: ``--max-function-jobs``.  Past it submissions are refused as a full queue."""
    max_bytes: int | None = None
    """Bytes of the function's job data held at once; 0: no limit, None:
    ``--max-function-bytes``."""
    keep_results: float = 0.0
    """Seconds a background job's result (or failure) is kept after it ends, to be
    fetched by handle (see :mod:`.results`); 0: not kept.  Written as seconds or
    as ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``."""

    def with_retry(self, retry: Retry) -> Policy:
        """This policy with its retry part (attempts, outcomes, backoff) taken from
        ``retry``; its timeout, failed-set and limits stay."""
        return replace(
            self,
            attempts=retry.attempts,
            retry_on=frozenset(retry.on),
            backoff_base=retry.backoff,
            backoff_cap=retry.backoff_cap,
            jitter=retry.jitter,
        )

    def retries(self, outcome: str) -> bool:
        return outcome in self.retry_on

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before attempt ``attempt + 1``, after ``attempt`` failures."""
        wait = min(self.backoff_cap, self.backoff_base * 2.0 ** max(0, attempt - 1))
        return min(self.backoff_cap, wait * (1.0 + self.jitter * rand()))


_KEYS = {f.name for f in fields(Policy)}


def policy_from_table(table: Mapping[str, Any], base: Policy, where: str) -> Policy:
    """A policy from a settings table, keys not given taken from ``base``.

    Raises:
        ValueError: an unknown key or a bad value; the message names ``where``.
    """
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(_KEYS))})")
        check = _duration if key == "keep_results" else _check
        changes[key] = check(key, value, where)
    return replace(base, **changes)


def _check(key: str, value: Any, where: str) -> Any:
    if key == "retry_on":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}: retry_on must be a list of {', '.join(OUTCOMES)}")
        unknown = [v for v in value if v not in OUTCOMES]
        if unknown:
            raise ValueError(f"{where}: retry_on: unknown outcome {unknown[0]!r}")
        return frozenset(value)
    if key == "keep_failed":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: keep_failed must be true or false")
        return value
    if key in ("max_jobs", "max_bytes"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{where}: {key} must be a whole number of at least 0")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {key} must be a number")
    if key == "attempts":
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}: attempts must be a whole number of at least 1")
        return value
    if value < 0 or (key == "jitter" and value > 1):
        bounds = "between 0 and 1" if key == "jitter" else "at least 0"
        raise ValueError(f"{where}: {key} must be {bounds}")
    return float(value)


_MERGED_LIMIT = 1024
"""Policies from code, each over a file's policy, remembered (a job asks at each
hand-out to a worker that is told its attempt)."""


def _duration(key: str, value: Any, where: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as error:
        raise ValueError(f"{where}: {key}: {error}") from None


@dataclass(frozen=True)
class Policies:
    """The server-wide default and the per-function patterns, in file order."""

    default: Policy = field(default_factory=Policy)
    patterns: tuple[tuple[str, Policy], ...] = ()
    _cache: dict[bytes, tuple[Policy, bool]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _merged: dict[tuple[Policy, Retry], Policy] = field(
        default_factory=dict, compare=False, repr=False
    )

    def for_function(self, name: bytes) -> Policy:
        """The settings file's policy of function ``name``."""
        return self._lookup(name)[0]

    def for_job(self, name: bytes, declared: Retry | None, submitted: Retry | None) -> Policy:
        """The policy a job of function ``name`` is retried by: the one rule of
        precedence.  Its retry part comes from the first of

        1. ``submitted``: the policy its submission carried;
        2. a ``[functions]`` entry of the settings file that matches ``name``;
        3. ``declared``: the policy a worker declared for the function;
        4. the settings file's ``[defaults]`` (built in: no retry).

        The caller knows this one job best; an operator's entry for a function
        overrides what the code says (as Celery's task annotations override a
        task's decorator); and code overrides a blanket default.  The rest of
        the policy (timeout, failed set, limits) always comes from the file."""
        policy, matched = self._lookup(name)
        retry = submitted if submitted is not None else None if matched else declared
        if retry is None:
            return policy
        merged = self._merged.get((policy, retry))
        if merged is None:
            if len(self._merged) >= _MERGED_LIMIT:  # policies from peers: keep it bounded
                self._merged.clear()
            merged = self._merged[policy, retry] = policy.with_retry(retry)
        return merged

    def _lookup(self, name: bytes) -> tuple[Policy, bool]:
        """The file's policy for ``name``, and whether a ``[functions]`` entry matched."""
        found = self._cache.get(name)
        if found is None:
            text = name.decode(errors="replace")
            policy = next(
                (p for pattern, p in self.patterns if fnmatch.fnmatchcase(text, pattern)), None
            )
            found = self._cache[name] = (policy or self.default, policy is not None)
        return found
