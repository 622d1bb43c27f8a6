"""geartrain: a Gearman job server and asyncio client, worker and admin libraries."""

from .__about__ import __version__

__all__ = ["__version__"]
