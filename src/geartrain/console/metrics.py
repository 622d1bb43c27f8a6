"""Prometheus metrics: gearman-exporter's gauges, per-function job counters and
latency histograms, the store's and the cluster's state.

The gauges keep the names of the widely used gearman-exporter
(``gearman_jobs``, ``gearman_jobs_running``, ``gearman_jobs_waiting``,
``gearman_workers``, ``gearman_up``) so existing dashboards work.  Every job
counter is per function, with one vocabulary: an attempt on a worker ends with
an ``outcome`` (completed, failed, exception, timed_out, worker_lost), and a
failed attempt may be retried, requeued or dropped.  Counters and histograms
are kept incrementally by :class:`JobMetrics`, the core's observer, so a scrape
only formats numbers.  With very many function names, only the busiest
``MAX_FUNCTIONS`` get their own label; the rest are summed under
``function="~other"``, which keeps a scrape bounded (100,000 names stay cheap).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.process_collector import ProcessCollector

from ..__about__ import __version__
from ..server.access import KINDS
from ..server.core import JobServer
from ..server.model import Function, Job
from .views import oldest_queued

if TYPE_CHECKING:
    from .api import ServerFacts

__all__ = ["EVENTS", "JobMetrics", "Prometheus"]

PRIORITIES = ("high", "normal", "low")
OUTCOMES = ("completed", "failed", "exception", "timed_out", "worker_lost")
"""How an attempt on a worker ends: the ``outcome`` label."""
AFTER_FAILURE = ("retried", "requeued", "dropped")
"""What may become of a failed attempt: each a counter of its own."""
EVENTS = ("submitted", *OUTCOMES, *AFTER_FAILURE, "cancelled")
_EVENT_INDEX = {kind: i for i, kind in enumerate(EVENTS)}
_ATTEMPTS = frozenset(OUTCOMES)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
OTHER = "~other"
MAX_FUNCTIONS = 1000
"""Function labels in a scrape; the rest are summed under :data:`OTHER`."""
STORE_STATES = ("ok", "full", "failing")


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.total += value

    def add(self, other: _Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class _FunctionStats:
    __slots__ = ("events", "wait", "run")

    def __init__(self) -> None:
        self.events = [0] * len(EVENTS)
        self.wait = _Histogram()
        self.run = _Histogram()

    def add(self, other: _FunctionStats) -> None:
        self.events = [a + b for a, b in zip(self.events, other.events, strict=True)]
        self.wait.add(other.wait)
        self.run.add(other.run)


class JobMetrics:
    """The core's observer: counts each job event per function, times waits and runs."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.functions: dict[bytes, _FunctionStats] = {}

    def event(self, job: Job, kind: str) -> None:
        name = job.function.name
        stats = self.functions.get(name)
        if stats is None:
            stats = self.functions[name] = _FunctionStats()
        stats.events[_EVENT_INDEX[kind]] += 1
        if kind in _ATTEMPTS and job.started_at:
            stats.wait.observe(max(0.0, job.started_at - job.created_at))
            stats.run.observe(max(0.0, self.clock() - job.started_at))

    def bounded(self, limit: int) -> dict[str, _FunctionStats]:
        """Per-function stats with at most ``limit`` labels, the rest summed as "~other"."""
        if len(self.functions) <= limit:
            return {_name(k): v for k, v in self.functions.items()}
        top = heapq.nlargest(limit, self.functions.items(), key=lambda kv: kv[1].events[0])
        kept = {k for k, _ in top}
        other = _FunctionStats()
        for k, v in self.functions.items():
            if k not in kept:
                other.add(v)
        return {_name(k): v for k, v in top} | {OTHER: other}


def _bounded_functions(core: JobServer, limit: int) -> list[tuple[str, Function]]:
    functions: Iterable[Function] = core.functions.values()
    if len(core.functions) > limit:
        functions = heapq.nlargest(limit, functions, key=lambda f: f.total)
    return [(_name(f.name), f) for f in functions]


class _Collector:
    """Reads the core, the observer and the store's writer at scrape time; what
    a cluster's shared store holds is read before (:meth:`Prometheus.text`)."""

    def __init__(self, core: JobServer, metrics: JobMetrics, server: ServerFacts) -> None:
        self.core = core
        self.metrics = metrics
        self.server = server
        self.members: int | None = None
        self.shared: list[tuple[bytes, int, int]] | None = None

    def collect(self) -> Iterator[Any]:
        yield from self._queue_gauges()
        yield from self._server_metrics()
        yield from self._per_function()
        yield from self._store_metrics()
        yield from self._cluster_metrics()

    def _queue_gauges(self) -> Iterator[Any]:
        by_function = [
            ("gearman_jobs", "Jobs of the function: queued, scheduled and running."),
            ("gearman_jobs_running", "Jobs of the function running on a worker."),
            ("gearman_jobs_waiting", "Jobs of the function waiting for a worker."),
            ("gearman_workers", "Worker registrations for the function."),
        ]
        families = {
            name: GaugeMetricFamily(name, text, labels=["function"]) for name, text in by_function
        }
        queued = GaugeMetricFamily(
            "geartrain_jobs_queued", "Queued jobs by priority.", labels=["function", "priority"]
        )
        oldest = GaugeMetricFamily(
            "geartrain_oldest_queued_job_age_seconds",
            "Seconds the function's oldest queued job has waited (0 with none queued).",
            labels=["function"],
        )
        paused = GaugeMetricFamily(
            "geartrain_function_paused",
            "1 while the function is paused (its jobs wait, no worker gets one), else 0.",
            labels=["function"],
        )
        held = set(self.core.pauses.names)
        now = self.core.clock()
        for name, f in _bounded_functions(self.core, MAX_FUNCTIONS):
            paused.add_metric([name], 1 if f.paused else 0)
            held.discard(f.name)
            families["gearman_jobs"].add_metric([name], f.total)
            families["gearman_jobs_running"].add_metric([name], f.running)
            families["gearman_jobs_waiting"].add_metric([name], f.total - f.running)
            families["gearman_workers"].add_metric([name], len(f.workers))
            for priority, count in zip(PRIORITIES, f.queued, strict=True):
                queued.add_metric([name, priority], count)
            since = oldest_queued(f.queues or ())
            oldest.add_metric([name], max(0.0, now - since) if since else 0.0)
        for function in sorted(held):  # paused, and not known now (no worker, no job)
            paused.add_metric([_name(function)], 1)
        yield from families.values()
        yield queued
        yield oldest
        yield paused

    def _server_metrics(self) -> Iterator[Any]:
        core = self.core
        yield GaugeMetricFamily("gearman_up", "The job server answers.", value=1)
        info = GaugeMetricFamily("gearman_version_info", "Server version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        level = GaugeMetricFamily(
            "geartrain_store_durability_info",
            "What an acknowledged background job survives: crash, power or memory.",
            labels=["level"],
        )
        level.add_metric([core.config.durability], 1)
        yield level
        yield GaugeMetricFamily("geartrain_connections", "Open connections.", value=len(core.peers))
        stats = core.stats
        for name, text, value in (
            ("geartrain_jobs_coalesced", "Submissions joined to an existing job.", stats.coalesced),
            ("geartrain_jobs_restored", "Jobs loaded from the store at start.", stats.restored),
        ):
            yield CounterMetricFamily(name, text, value=value)
        limits = CounterMetricFamily(
            "geartrain_limit_reached", "Times a resource limit was reached.", labels=["limit"]
        )
        for limit in ("connections", "input", "output", "queue", "function"):
            limits.add_metric([limit], getattr(stats, "limit_" + limit))
        yield limits
        refused = CounterMetricFamily(
            "geartrain_access_refused", "Requests the access rules refused.", labels=["kind"]
        )
        for kind in KINDS:
            refused.add_metric([kind], getattr(stats, "refused_" + kind))
        yield refused
        failed = GaugeMetricFamily(
            "geartrain_jobs_failed_stored",
            "Background jobs in the failed-job set.",
            labels=["function"],
        )
        for function, count in core.failed.counts().items():
            failed.add_metric([_name(function)], count)
        yield failed

    def _per_function(self) -> Iterator[Any]:
        per = self.metrics.bounded(MAX_FUNCTIONS)
        submitted = CounterMetricFamily(
            "geartrain_jobs_submitted",
            "Jobs created (a submission coalesced with an existing job is not counted).",
            labels=["function"],
        )
        attempts = CounterMetricFamily(
            "geartrain_job_attempts",
            "Attempts on a worker, by how they ended: completed, failed, exception, "
            "timed_out, worker_lost.",
            labels=["function", "outcome"],
        )
        after = {
            "retried": "Failed attempts run again later, as the function's retry policy says.",
            "requeued": "Jobs queued again at once after losing their worker.",
            "dropped": "Jobs dropped after losing their worker more than --job-retries times.",
            "cancelled": "Jobs cancelled by an operator.",
        }
        counters = {
            kind: CounterMetricFamily(f"geartrain_jobs_{kind}", text, labels=["function"])
            for kind, text in after.items()
        }
        wait = HistogramMetricFamily(
            "geartrain_job_queue_wait_seconds",
            "Time from submission until a worker took the job, per function.",
            labels=["function"],
        )
        run = HistogramMetricFamily(
            "geartrain_job_run_seconds",
            "Time a worker spent on an attempt until it ended, per function.",
            labels=["function"],
        )
        for name, s in per.items():
            for kind, count in zip(EVENTS, s.events, strict=True):
                if kind == "submitted":
                    submitted.add_metric([name], count)
                elif kind in _ATTEMPTS:
                    attempts.add_metric([name, kind], count)
                else:
                    counters[kind].add_metric([name], count)
            wait.add_metric([name], s.wait.buckets(), s.wait.total)
            run.add_metric([name], s.run.buckets(), s.run.total)
        yield submitted
        yield attempts
        yield from counters.values()
        yield wait
        yield run

    def _store_metrics(self) -> Iterator[Any]:
        primary = self.server.store_primary
        if primary is not None:
            info = GaugeMetricFamily(
                "geartrain_store_primary_info",
                "The store's server that takes the writes (several hosts or Sentinel:"
                " the primary now).",
                labels=["host"],
            )
            info.add_metric([primary], 1)
            yield info
        writer = self.server.writer
        if writer is None and self.server.cluster is None:
            return
        # A cluster member's shared store: its state as the heartbeat finds it.
        current = self.server.store_state[0]
        yield GaugeMetricFamily(
            "geartrain_store_up",
            "The store accepts writes.",
            value=int(current == "ok" if writer is None else not writer.outage),
        )
        state = GaugeMetricFamily(
            "geartrain_store_state",
            "The store's state: 1 for the current one of ok, full and failing.",
            labels=["state"],
        )
        for name in STORE_STATES:
            state.add_metric([name], int(name == current))
        yield state
        if writer is None:
            return
        yield CounterMetricFamily(
            "geartrain_store_writes",
            "Store writes: transactions, or appends to the queue log.",
            value=writer.writes,
        )
        yield GaugeMetricFamily(
            "geartrain_store_pending", "Jobs waiting to be written.", value=writer.pending
        )
        failures = CounterMetricFamily(
            "geartrain_store_failures",
            "Store writes (or log appends) and background fsyncs that failed.",
            labels=["kind"],
        )
        failures.add_metric(["write"], writer.failed_writes)
        failures.add_metric(["fsync"], writer.health.failed_syncs)
        yield failures

    def _cluster_metrics(self) -> Iterator[Any]:
        if self.members is not None:
            yield GaugeMetricFamily(
                "geartrain_cluster_members",
                "Members of the cluster whose lease is valid, as the shared store shows them.",
                value=self.members,
            )
        if self.shared is None:
            return
        jobs = GaugeMetricFamily(
            "geartrain_cluster_jobs",
            "Background jobs of the function in the cluster: queued, scheduled and running.",
            labels=["function"],
        )
        running = GaugeMetricFamily(
            "geartrain_cluster_jobs_running",
            "Background jobs of the function claimed by a member: held for its workers or running.",
            labels=["function"],
        )
        for name, total, on_worker in heapq.nlargest(
            MAX_FUNCTIONS, self.shared, key=lambda q: q[1]
        ):
            jobs.add_metric([_name(name)], total)
            running.add_metric([_name(name)], on_worker)
        yield jobs
        yield running


class Prometheus:
    """``/metrics``: the server's metrics and the ``process_*`` collector."""

    def __init__(self, core: JobServer, metrics: JobMetrics, server: ServerFacts) -> None:
        self.server = server
        self.collector = _Collector(core, metrics, server)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)

    async def text(self) -> bytes:
        """The text format; a cluster member first asks the shared store how many
        members and jobs it has (left out if the store does not answer)."""
        cluster = self.server.cluster
        if cluster is not None:
            self.collector.members = await cluster.live_members()
            self.collector.shared = await cluster.shared_queues()
        data: bytes = generate_latest(self.registry)
        return data
