"""The job server: a sans-I/O core (:mod:`.core`) behind thin asyncio I/O (:mod:`.network`)."""

from .app import ServerApp
from .config import ServerConfig
from .core import JobServer

__all__ = ["JobServer", "ServerApp", "ServerConfig"]
