"""geartrain: a Gearman job server, and asyncio client, worker and admin libraries.

The libraries work with any Gearman server (geartrain or gearmand)::

    import geartrain

    async with geartrain.Client(["127.0.0.1:4730"]) as client:
        print(await client.submit("reverse", b"hello"))

Blocking versions with the same names and methods live in :mod:`geartrain.sync`.

The names below are imported on first use (PEP 562), so ``import geartrain``
and the command-line tools start without loading asyncio and the libraries.
"""

from __future__ import annotations

import importlib

from .__about__ import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (2 ms a start)
if TYPE_CHECKING:
    from typing import Any

    from .admin import Admin, FailedJobInfo, FunctionStatus, JobInfo, PriorityStatus, WorkerInfo
    from .client import Client, JobRequest, Priority
    from .client_job import (
        DataUpdate,
        Job,
        JobStatus,
        StatusUpdate,
        Update,
        WarningUpdate,
        as_completed,
    )
    from .codecs import Codec, dumps, loads
    from .connection import Address
    from .errors import (
        ConnectionLost,
        GearmanError,
        JobCancelled,
        JobException,
        JobFailed,
        JobTimeout,
        NoResult,
        NoServersAvailable,
        ProtocolError,
        ResultDecodeError,
        ServerError,
    )
    from .kept_results import BackgroundJob, JobResult
    from .retry import Retry
    from .worker import Worker
    from .worker_job import WorkerJob

_WHERE = {
    "Address": "connection",
    "Admin": "admin",
    "Client": "client",
    "Codec": "codecs",
    "ConnectionLost": "errors",
    "DataUpdate": "client_job",
    "FailedJobInfo": "admin",
    "FunctionStatus": "admin",
    "GearmanError": "errors",
    "Job": "client_job",
    "JobCancelled": "errors",
    "JobException": "errors",
    "JobFailed": "errors",
    "JobInfo": "admin",
    "JobRequest": "client",
    "JobStatus": "client_job",
    "JobTimeout": "errors",
    "BackgroundJob": "kept_results",
    "JobResult": "kept_results",
    "NoResult": "errors",
    "NoServersAvailable": "errors",
    "Priority": "client",
    "PriorityStatus": "admin",
    "ProtocolError": "errors",
    "ResultDecodeError": "errors",
    "Retry": "retry",
    "ServerError": "errors",
    "StatusUpdate": "client_job",
    "Update": "client_job",
    "WarningUpdate": "client_job",
    "Worker": "worker",
    "WorkerInfo": "admin",
    "WorkerJob": "worker_job",
    "as_completed": "client_job",
    "dumps": "codecs",
    "loads": "codecs",
}

__all__ = [
    "Address",
    "Admin",
    "Client",
    "Codec",
    "ConnectionLost",
    "DataUpdate",
    "FailedJobInfo",
    "FunctionStatus",
    "GearmanError",
    "Job",
    "JobCancelled",
    "JobException",
    "JobFailed",
    "JobInfo",
    "JobRequest",
    "JobStatus",
    "JobTimeout",
    "BackgroundJob",
    "JobResult",
    "NoResult",
    "NoServersAvailable",
    "Priority",
    "PriorityStatus",
    "ProtocolError",
    "ResultDecodeError",
    "Retry",
    "ServerError",
    "StatusUpdate",
    "Update",
    "WarningUpdate",
    "Worker",
    "WorkerInfo",
    "WorkerJob",
    "as_completed",
    "dumps",
    "loads",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'geartrain' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
