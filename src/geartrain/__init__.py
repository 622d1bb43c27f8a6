"""geartrain: a Gearman job server, and asyncio client, worker and admin libraries.

The libraries work with any Gearman server (geartrain or gearmand)::

    import geartrain

    async with geartrain.Client(["127.0.0.1:4730"]) as client:
        print(await client.submit("reverse", b"hello"))

Blocking versions with the same names and methods live in :mod:`geartrain.sync`.
"""

from __future__ import annotations

from .__about__ import __version__
from .admin import Admin, FailedJobInfo, FunctionStatus, JobInfo, PriorityStatus, WorkerInfo
from .client import Client, JobRequest, Priority
from .codecs import dumps, loads
from .connection import Address
from .errors import (
    ConnectionLost,
    GearmanError,
    JobException,
    JobFailed,
    JobTimeout,
    NoServersAvailable,
    ProtocolError,
    ServerError,
)
from .job import DataUpdate, Job, JobStatus, StatusUpdate, Update, WarningUpdate, as_completed
from .worker import Worker
from .worker_job import WorkerJob

__all__ = [
    "Address",
    "Admin",
    "Client",
    "ConnectionLost",
    "DataUpdate",
    "FailedJobInfo",
    "FunctionStatus",
    "GearmanError",
    "Job",
    "JobException",
    "JobFailed",
    "JobInfo",
    "JobRequest",
    "JobStatus",
    "JobTimeout",
    "NoServersAvailable",
    "Priority",
    "PriorityStatus",
    "ProtocolError",
    "ServerError",
    "StatusUpdate",
    "Update",
    "WarningUpdate",
    "Worker",
    "WorkerInfo",
    "WorkerJob",
    "__version__",
    "as_completed",
    "dumps",
    "loads",
]
