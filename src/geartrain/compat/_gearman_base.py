"""python-gearman 2.0.2's constants, errors, encoders and job classes.

See :mod:`geartrain.compat.gearman`.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Sequence
from typing import Any

from .. import sync
from ..client import Priority
from ..connection import Address, ServerSpec, parse_address

log = logging.getLogger("gearman")

DEFAULT_GEARMAN_PORT = 4730

PRIORITY_NONE = None
PRIORITY_LOW = "LOW"
PRIORITY_HIGH = "HIGH"

JOB_UNKNOWN = "UNKNOWN"  # not submitted, or its connection failed
JOB_PENDING = "PENDING"  # submitted, waiting for a handle
JOB_CREATED = "CREATED"  # accepted by a server
JOB_FAILED = "FAILED"  # WORK_FAIL or WORK_EXCEPTION
JOB_COMPLETE = "COMPLETE"  # WORK_COMPLETE

_PRIORITIES = {None: Priority.NORMAL, PRIORITY_LOW: Priority.LOW, PRIORITY_HIGH: Priority.HIGH}


class GearmanError(Exception):
    pass


class ConnectionError(GearmanError):  # python-gearman's name, shadowing the builtin
    pass


class ServerUnavailable(GearmanError):
    pass


class ProtocolError(GearmanError):
    pass


class UnknownCommandError(GearmanError):
    pass


class ExceededConnectionAttempts(GearmanError):
    pass


class InvalidClientState(GearmanError):
    pass


class InvalidWorkerState(GearmanError):
    pass


class InvalidAdminClientState(GearmanError):
    pass


class DataEncoder:
    """Subclass with ``encode``/``decode`` classmethods and set it as ``data_encoder``."""

    @classmethod
    def encode(cls, encodable_object: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def decode(cls, decodable_string: Any) -> Any:
        raise NotImplementedError


class NoopEncoder(DataEncoder):
    """Data go out as given (bytes, or str as UTF-8) and come back as bytes."""

    @classmethod
    def encode(cls, encodable_object: Any) -> Any:
        if not isinstance(encodable_object, bytes | bytearray | str):
            raise TypeError(f"Expecting byte string, got {type(encodable_object)!r}")
        return encodable_object

    @classmethod
    def decode(cls, decodable_string: Any) -> Any:
        return decodable_string


def _host_list(host_list: Sequence[ServerSpec] | None) -> list[Address]:
    return [parse_address(host) for host in host_list or []]


class GearmanJob:
    """A job: on the client, inside a request; on the worker, the job being run."""

    def __init__(
        self, connection: Any, handle: bytes | None, task: str, unique: str | None, data: Any
    ) -> None:
        self.connection = connection
        self.handle = handle
        self.task = task
        self.unique = unique
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return dict(task=self.task, job_handle=self.handle, unique=self.unique, data=self.data)

    def __repr__(self) -> str:
        return (
            f"<GearmanJob connection/handle=({self.connection!r}, {self.handle!r}), "
            f"task={self.task}, unique={self.unique}, data={self.data!r}>"
        )


class GearmanJobRequest:
    """A submitted job and what the client learnt about it."""

    def __init__(
        self,
        gearman_job: GearmanJob,
        initial_priority: str | None = PRIORITY_NONE,
        background: bool = False,
        max_attempts: int = 1,
    ) -> None:
        self.gearman_job = gearman_job
        self.priority = initial_priority
        self.background = background
        self.connection_attempts = 0
        self.max_connection_attempts = max_attempts
        self.initialize_request()

    def initialize_request(self) -> None:
        self.result: Any = None
        self.exception: Any = None
        self.warning_updates: collections.deque[Any] = collections.deque()
        self.data_updates: collections.deque[Any] = collections.deque()
        self.status: dict[str, Any] = {}
        self.state = JOB_UNKNOWN
        self.timed_out = False
        self._job: sync.Job | None = None

    def reset(self) -> None:
        self.initialize_request()
        self.gearman_job.connection = None
        self.gearman_job.handle = None

    @property
    def job(self) -> GearmanJob:
        return self.gearman_job

    @property
    def complete(self) -> bool:
        if self.background:
            return self.state == JOB_CREATED
        return self.state in (JOB_FAILED, JOB_COMPLETE)

    @property
    def status_updates(self) -> collections.deque[tuple[int, int]]:
        """Deprecated in 2.0.1: the last status as a one-item deque."""
        out: collections.deque[tuple[int, int]] = collections.deque()
        if self.status:
            out.append((self.status.get("numerator", 0), self.status.get("denominator", 0)))
        return out

    @property
    def server_status(self) -> dict[str, Any]:
        """Deprecated in 2.0.1: same as ``status``."""
        return self.status

    def __repr__(self) -> str:
        return (
            f"<GearmanJobRequest task={self.job.task!r}, unique={self.job.unique!r}, "
            f"priority={self.priority!r}, background={self.background!r}, "
            f"state={self.state!r}, timed_out={self.timed_out!r}>"
        )


def _status_dict(
    handle: bytes | None, known: bool, running: bool, num: int, den: int
) -> dict[str, Any]:
    return {
        "handle": handle,
        "known": known,
        "running": running,
        "numerator": num,
        "denominator": den,
        "time_received": time.time(),
    }
