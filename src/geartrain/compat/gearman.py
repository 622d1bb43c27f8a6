"""python-gearman 2.0.2's API on top of :mod:`geartrain.sync`.

Port Python 2-era code by changing one import::

    from geartrain.compat import gearman

    client = gearman.GearmanClient(["localhost:4730"])
    request = client.submit_job("reverse", "hello")
    print(request.state, request.result)

The classes, method signatures, constants, request states, status dicts and
admin dicts are python-gearman 2.0.2's.  What differs, on purpose:

* Data are bytes.  ``str`` is accepted (and encoded as UTF-8) wherever data
  goes out; data that comes back is ``bytes`` unless a ``data_encoder``
  decodes it.  Handles, task names and unique keys are ``str``.
* Failover follows geartrain's client: servers are chosen by unique key or
  round robin rather than shuffled, and a foreground job whose server dies is
  resubmitted on another one.
* Worker callbacks run in the thread that called ``work()``, one job at a
  time, as before; ``send_job_exception`` sends WORK_EXCEPTION only (2.0.2
  followed it with a WORK_FAIL that servers answer with an ERROR).
"""

from __future__ import annotations

from ._gearman_base import (
    DEFAULT_GEARMAN_PORT,
    JOB_COMPLETE,
    JOB_CREATED,
    JOB_FAILED,
    JOB_PENDING,
    JOB_UNKNOWN,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_NONE,
    ConnectionError,
    DataEncoder,
    ExceededConnectionAttempts,
    GearmanError,
    GearmanJob,
    GearmanJobRequest,
    InvalidAdminClientState,
    InvalidClientState,
    InvalidWorkerState,
    NoopEncoder,
    ProtocolError,
    ServerUnavailable,
    UnknownCommandError,
)
from ._gearman_client import GearmanClient
from ._gearman_worker import GearmanAdminClient, GearmanWorker

__all__ = [
    "DEFAULT_GEARMAN_PORT",
    "JOB_COMPLETE",
    "JOB_CREATED",
    "JOB_FAILED",
    "JOB_PENDING",
    "JOB_UNKNOWN",
    "PRIORITY_HIGH",
    "PRIORITY_LOW",
    "PRIORITY_NONE",
    "ConnectionError",
    "DataEncoder",
    "ExceededConnectionAttempts",
    "GearmanAdminClient",
    "GearmanClient",
    "GearmanError",
    "GearmanJob",
    "GearmanJobRequest",
    "GearmanWorker",
    "InvalidAdminClientState",
    "InvalidClientState",
    "InvalidWorkerState",
    "NoopEncoder",
    "ProtocolError",
    "ServerUnavailable",
    "UnknownCommandError",
]

__version__ = "2.0.2"
