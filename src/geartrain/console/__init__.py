"""The operations listener: web console, JSON API, /metrics, health probes, HTTP job gateway.

Everything here runs on the server's own event loop (aiohttp's server) and
reads the core directly; the core knows nothing of it but an optional
:class:`~geartrain.server.ports.Observer` that hears of each job's events.
"""

from .app import Console
from .gateway import Gateway

__all__ = ["Console", "Gateway"]
