"""The settings file (``--settings FILE``): TOML read at start and again on SIGHUP.

gearmand's ``--config-file`` is a file of flags and keeps that meaning; this
file holds what flags cannot say well::

    [defaults]                    # every function (the built-in default retries nothing)
    keep_failed = true

    [functions."resize_*"]        # glob patterns, first match in file order wins
    attempts = 3
    retry_on = ["fail", "exception", "worker_lost", "timeout"]
    backoff_base = 2.0            # seconds; doubles per attempt, up to backoff_cap
    backoff_cap = 600.0
    jitter = 0.25
    timeout = 300                 # for workers that registered without CAN_DO_TIMEOUT
    max_jobs = 1000               # jobs held at once (0: none; unset: --max-function-jobs)
    max_bytes = 104857600         # job data held at once (unset: --max-function-bytes)
    keep_results = "1h"           # background jobs' results, fetched by handle (0: not kept)

    [failed]                      # the failed-job set
    max_jobs = 10000
    max_age = 2592000             # seconds (30 days)

    [results]                     # the kept results of background jobs
    max_jobs = 100000
    max_bytes = 67108864

    [[schedules]]
    name = "nightly-report"
    cron = "0 3 * * *"            # UTC
    function = "report"
    payload = "daily"

    [access]                      # who may submit, work, query and administer
    ...                           # (see geartrain.server.access and docs/security.md)

Unknown tables and keys are errors, so a typo is noticed at start rather
than ignored.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .access import AccessError, AccessRules
from .failed import DEFAULT_MAX_AGE, DEFAULT_MAX_JOBS
from .policies import Policies, Policy, policy_from_table
from .results import DEFAULT_MAX_BYTES, DEFAULT_MAX_RESULTS
from .schedules import Schedule, schedule_from_table

__all__ = ["Settings", "SettingsError", "load_settings", "parse_settings"]

_TABLES = frozenset({"defaults", "functions", "failed", "results", "schedules", "access"})


class SettingsError(ValueError):
    """The settings file cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class Settings:
    """Everything the settings file says (the defaults when there is none)."""

    policies: Policies = field(default_factory=Policies)
    schedules: tuple[Schedule, ...] = ()
    failed_max_jobs: int = DEFAULT_MAX_JOBS
    failed_max_age: float = DEFAULT_MAX_AGE
    access: AccessRules = field(default_factory=AccessRules)
    results_max_jobs: int = DEFAULT_MAX_RESULTS
    results_max_bytes: int = DEFAULT_MAX_BYTES


def load_settings(path: str) -> Settings:
    """Read and check the settings file.

    Raises:
        SettingsError: unreadable, not TOML, or a bad value.
    """
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as error:
        raise SettingsError(f"settings file {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"settings file {path}: {error}") from None
    try:
        return parse_settings(data)
    except ValueError as error:
        raise SettingsError(f"settings file {path}: {error}") from None


def parse_settings(data: Mapping[str, Any]) -> Settings:
    """Settings from parsed TOML.

    Raises:
        ValueError: an unknown table or key, or a bad value.
    """
    unknown = set(data) - _TABLES
    if unknown:
        raise ValueError(f"unknown table [{sorted(unknown)[0]}]")
    default = policy_from_table(_table(data, "defaults"), Policy(), "[defaults]")
    patterns = tuple(
        (
            pattern,
            policy_from_table(
                _table(table, None, f"[functions.{pattern!r}]"), default, f"[functions.{pattern!r}]"
            ),
        )
        for pattern, table in _table(data, "functions").items()
    )
    failed = _table(data, "failed")
    extra = set(failed) - {"max_jobs", "max_age"}
    if extra:
        raise ValueError(f"[failed]: unknown key {sorted(extra)[0]!r}")
    max_jobs = failed.get("max_jobs", DEFAULT_MAX_JOBS)
    max_age = failed.get("max_age", DEFAULT_MAX_AGE)
    if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 0:
        raise ValueError("[failed]: max_jobs must be a whole number of at least 0")
    if isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age < 0:
        raise ValueError("[failed]: max_age must be a number of seconds")
    results = _table(data, "results")
    extra = set(results) - {"max_jobs", "max_bytes"}
    if extra:
        raise ValueError(f"[results]: unknown key {sorted(extra)[0]!r}")
    bounds = []
    for key, default_value in (("max_jobs", DEFAULT_MAX_RESULTS), ("max_bytes", DEFAULT_MAX_BYTES)):
        value = results.get(key, default_value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"[results]: {key} must be a whole number of at least 0")
        bounds.append(value)
    entries = data.get("schedules", [])
    if not isinstance(entries, list):
        raise ValueError("schedules must be an array of tables ([[schedules]])")
    schedules = tuple(
        schedule_from_table(
            _table(entry, None, f"[[schedules]] #{i + 1}"), f"[[schedules]] #{i + 1}"
        )
        for i, entry in enumerate(entries)
    )
    names = [s.name for s in schedules]
    if len(set(names)) != len(names):
        raise ValueError("two schedules have the same name")
    try:
        access = AccessRules.from_toml(data.get("access"))
    except AccessError as error:
        raise ValueError(str(error)) from None
    return Settings(
        Policies(default, patterns),
        schedules,
        max_jobs,
        float(max_age),
        access,
        bounds[0],
        bounds[1],
    )


def _table(data: Any, key: str | None, where: str | None = None) -> Mapping[str, Any]:
    value = data.get(key, {}) if key is not None else data
    if not isinstance(value, dict):
        raise ValueError(f"{where or f'[{key}]'} must be a table")
    return value
