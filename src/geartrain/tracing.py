"""OpenTelemetry spans around job submission and execution, when it is installed.

``opentelemetry-api`` is optional: without it (or without an SDK configured
by the application) :func:`span` costs one failed import, once.  The wire
protocol has no room for trace context, so a worker's span is not linked to
the client's; both carry the function name and job handle to join them by.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["span"]

_api: Any = None
_missing = False


def _trace() -> Any:
    global _api, _missing
    if _api is None and not _missing:
        try:
            from opentelemetry import trace
        except ImportError:
            _missing = True
        else:
            _api = trace
    return _api


@contextmanager
def span(name: str, kind: str, function: str) -> Iterator[Any]:
    """A span ``"<name> <function>"`` of ``kind`` (``"PRODUCER"``, ``"CONSUMER"``, ...).

    Yields the span (None without OpenTelemetry); an exception that leaves the
    block is recorded on it.
    """
    trace = _trace()
    if trace is None:
        yield None
        return
    tracer = trace.get_tracer("geartrain")
    with tracer.start_as_current_span(
        f"{name} {function}",
        kind=getattr(trace.SpanKind, kind),
        attributes={"messaging.system": "gearman", "messaging.destination.name": function},
    ) as current:
        yield current


def set_handle(current: Any, handle: bytes | None) -> None:
    """Record the job handle on a span from :func:`span`."""
    if current is not None and handle:
        current.set_attribute("gearman.job.handle", handle.decode(errors="replace"))
