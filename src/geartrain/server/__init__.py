"""The job server: a sans-I/O core (:mod:`.core`) behind thin asyncio I/O (:mod:`.network`)."""

from .app import ServerApp
from .core import JobServer
from .flags import ServerConfig

__all__ = ["JobServer", "ServerApp", "ServerConfig"]
