"""Operations endpoint: Prometheus metrics, a JSON status and a small web dashboard.

`geartrain server --metrics-port N` serves, on the same address as the job
port:

- ``/metrics``: Prometheus text.  The gauges keep the names of the widely used
  gearman-exporter (``gearman_jobs``, ``gearman_jobs_running``,
  ``gearman_jobs_waiting``, ``gearman_workers``, ``gearman_up``), so existing
  dashboards work; ``geartrain_*`` adds what gearmand never counted: job
  outcomes, retries, coalescing, connections and the store's health.
- ``/status.json``: the same numbers for scripts.
- ``/``: an HTML page that refreshes itself.

Everything is read on the event loop, from the core's own counters, when a
request comes; nothing is added to the per-packet path but a few integer
increments.  prometheus-client formats the metrics (``pip install
geartrain[metrics]``).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from ..__about__ import __version__
from .access import KINDS
from .core import JobServer
from .jobs import STAT_NAMES
from .persistence import StoreWriter

__all__ = ["MetricsServer"]

log = logging.getLogger("geartrain.server.metrics")

PRIORITIES = ("high", "normal", "low")
OUTCOMES = ("completed", "failed", "exceptions", "timed_out", "dropped", "cancelled")


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class MetricsServer:
    """Serves /metrics, /status.json and / for one job server."""

    def __init__(self, core: JobServer, writer: StoreWriter | None, store: str) -> None:
        self.core = core
        self.writer = writer
        self.store = store
        self.started = time.time()
        self._registry: Any = None

    # -- data ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        core = self.core
        functions = [
            {
                "function": _name(f.name),
                "total": f.total,
                "running": f.running,
                "queued": dict(zip(PRIORITIES, f.queued, strict=True)),
                "scheduled": f.scheduled,
                "workers": len(f.workers),
                "max_queue": list(f.max_queue) if f.max_queue else None,
            }
            for f in core.functions.values()
        ]
        stats = {name: getattr(core.stats, name) for name in STAT_NAMES}
        store: dict[str, Any] = {"description": self.store}
        if self.writer is not None:
            store |= {
                "up": not self.writer.outage,
                "writes": self.writer.writes,
                "pending": self.writer.pending,
            }
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_seconds": round(time.time() - self.started, 1),
            "connections": len(core.peers),
            "jobs": len(core.jobs),
            "functions": functions,
            "counters": stats,
            "store": store,
        }

    def prometheus(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(_Collector(self))
        data: bytes = generate_latest(self._registry)
        return data

    def dashboard(self) -> bytes:
        status = self.status()
        rows = "".join(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td></tr>".format(
                html.escape(f["function"]),
                f["queued"]["high"],
                f["queued"]["normal"],
                f["queued"]["low"],
                f["scheduled"],
                f["running"],
                f["workers"],
            )
            for f in status["functions"]
        )
        counters = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in status["counters"].items()
        )
        store = status["store"]
        store_state = "" if "up" not in store else (" — up" if store["up"] else " — DOWN")
        page = _PAGE.format(
            version=html.escape(status["version"]),
            pid=status["pid"],
            uptime=status["uptime_seconds"],
            connections=status["connections"],
            jobs=status["jobs"],
            store=html.escape(store["description"]) + store_state,
            rows=rows or '<tr><td colspan="7">no functions yet</td></tr>',
            counters=counters,
        )
        return page.encode()

    # -- HTTP --------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One HTTP/1.0-style exchange: read the request, answer, close."""
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            status, ctype, body = "400 Bad Request", "text/plain", b"bad request\n"
        else:
            try:
                status, ctype, body = self.respond(method, path.split("?", 1)[0])
            except Exception:  # a bug here must not cost the job server anything
                log.exception("metrics request for %s failed", path)
                status, ctype, body = "500 Internal Server Error", "text/plain", b"error\n"
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(head.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def respond(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == "/metrics":
            try:
                return "200 OK", "text/plain; version=0.0.4; charset=utf-8", self.prometheus()
            except ImportError:
                return "501 Not Implemented", "text/plain", b"pip install geartrain[metrics]\n"
        if path == "/status.json":
            return "200 OK", "application/json", json.dumps(self.status()).encode()
        if path in ("/", "/index.html"):
            return "200 OK", "text/html; charset=utf-8", self.dashboard()
        return "404 Not Found", "text/plain", b"not found\n"


class _Collector:
    """prometheus-client collector reading the core at scrape time."""

    def __init__(self, metrics: MetricsServer) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        core = self.metrics.core
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
        for f in core.functions.values():
            name = _name(f.name)
            families["gearman_jobs"].add_metric([name], f.total)
            families["gearman_jobs_running"].add_metric([name], f.running)
            families["gearman_jobs_waiting"].add_metric([name], f.total - f.running)
            families["gearman_workers"].add_metric([name], len(f.workers))
            for priority, count in zip(PRIORITIES, f.queued, strict=True):
                queued.add_metric([name, priority], count)
        yield from families.values()
        yield queued
        yield GaugeMetricFamily("gearman_up", "The job server answers.", value=1)
        info = GaugeMetricFamily("gearman_version_info", "Server version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily("geartrain_connections", "Open connections.", value=len(core.peers))
        stats = core.stats
        outcomes = CounterMetricFamily(
            "geartrain_jobs_finished", "Jobs that ended, by outcome.", labels=["outcome"]
        )
        for outcome in OUTCOMES:
            outcomes.add_metric([outcome], getattr(stats, outcome))
        yield outcomes
        for name, text, value in (
            ("geartrain_jobs_created", "Jobs created (not counting coalesced).", stats.created),
            ("geartrain_jobs_coalesced", "Submissions joined to an existing job.", stats.coalesced),
            ("geartrain_jobs_requeued", "Jobs requeued after losing their worker.", stats.requeued),
            ("geartrain_jobs_restored", "Jobs loaded from the store at start.", stats.restored),
        ):
            yield CounterMetricFamily(name, text, value=value)
        refused = CounterMetricFamily(
            "geartrain_access_refused", "Requests the access rules refused.", labels=["kind"]
        )
        for kind in KINDS:
            refused.add_metric([kind], getattr(stats, "refused_" + kind))
        yield refused
        writer = self.metrics.writer
        if writer is not None:
            yield GaugeMetricFamily(
                "geartrain_store_up", "The store accepts writes.", value=int(not writer.outage)
            )
            yield CounterMetricFamily(
                "geartrain_store_writes", "Store transactions.", value=writer.writes
            )
            yield GaugeMetricFamily(
                "geartrain_store_pending", "Jobs waiting to be written.", value=writer.pending
            )


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>geartrain</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .3em 1em; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
</style></head><body>
<h1>geartrain {version}</h1>
<p>pid {pid} · up {uptime} s · {connections} connections · {jobs} jobs · queue: {store}</p>
<h2>Functions</h2>
<table><tr><th>function</th><th>high</th><th>normal</th><th>low</th><th>scheduled</th>
<th>running</th><th>workers</th></tr>{rows}</table>
<h2>Since start</h2>
<table>{counters}</table>
<p><a href="/metrics">/metrics</a> · <a href="/status.json">/status.json</a></p>
</body></html>
"""
