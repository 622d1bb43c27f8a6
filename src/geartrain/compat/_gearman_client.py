"""python-gearman 2.0.2's ``GearmanClient`` on :class:`geartrain.sync.Client`."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from .. import sync
from ..client import Priority
from ..codecs import to_bytes
from ..connection import Address, ServerSpec, parse_address
from ..errors import ConnectionLost, JobException, JobFailed, JobTimeout
from ._gearman_base import (
    _PRIORITIES,
    JOB_COMPLETE,
    JOB_CREATED,
    JOB_FAILED,
    JOB_PENDING,
    JOB_UNKNOWN,
    PRIORITY_NONE,
    DataEncoder,
    ExceededConnectionAttempts,
    GearmanJob,
    GearmanJobRequest,
    NoopEncoder,
    ServerUnavailable,
    _host_list,
    _status_dict,
)

__all__ = ["GearmanClient"]


class GearmanClient:
    """Submit jobs to one of several servers (python-gearman 2.0.2's ``GearmanClient``)."""

    data_encoder: ClassVar[type[DataEncoder]] = NoopEncoder
    job_class: ClassVar[type[GearmanJob]] = GearmanJob
    job_request_class: ClassVar[type[GearmanJobRequest]] = GearmanJobRequest

    def __init__(
        self, host_list: Sequence[ServerSpec] | None = None, random_unique_bytes: int = 16
    ) -> None:
        self.random_unique_bytes = random_unique_bytes
        self.connection_list = _host_list(host_list)
        self._client = sync.Client(self.connection_list) if self.connection_list else None

    def _sync(self) -> sync.Client:
        if self._client is None:
            raise ServerUnavailable(f"Found no valid connections: {self.connection_list!r}")
        return self._client

    def shutdown(self) -> None:
        if self._client is not None:
            self._client.close()

    def add_connection(self, hostport_tuple: ServerSpec) -> Address:
        """Add a server (call before submitting)."""
        address = parse_address(hostport_tuple)
        self.connection_list.append(address)
        if self._client is not None:
            self._client.close()
        self._client = sync.Client(self.connection_list)
        return address

    # -- submitting --------------------------------------------------------------

    def submit_job(
        self,
        task: str,
        data: Any,
        unique: str | None = None,
        priority: str | None = PRIORITY_NONE,
        background: bool = False,
        wait_until_complete: bool = True,
        max_retries: int = 0,
        poll_timeout: float | None = None,
    ) -> GearmanJobRequest:
        """Submit one job; by default wait for it to complete."""
        job_info = dict(task=task, data=data, unique=unique, priority=priority)
        requests = self.submit_multiple_jobs(
            [job_info],
            background=background,
            wait_until_complete=wait_until_complete,
            max_retries=max_retries,
            poll_timeout=poll_timeout,
        )
        return requests[0]

    def submit_multiple_jobs(
        self,
        jobs_to_submit: Sequence[dict[str, Any]],
        background: bool = False,
        wait_until_complete: bool = True,
        max_retries: int = 0,
        poll_timeout: float | None = None,
    ) -> list[GearmanJobRequest]:
        """Submit jobs given as dicts ``{'task', 'data', 'unique', 'priority'}``."""
        requests = [
            self._create_request_from_dictionary(info, background, max_retries)
            for info in jobs_to_submit
        ]
        return self.submit_multiple_requests(
            requests, wait_until_complete=wait_until_complete, poll_timeout=poll_timeout
        )

    def submit_multiple_requests(
        self,
        job_requests: Sequence[GearmanJobRequest],
        wait_until_complete: bool = True,
        poll_timeout: float | None = None,
    ) -> list[GearmanJobRequest]:
        """Submit requests (new, or ones whose connection failed); optionally wait."""
        deadline = None if poll_timeout is None else time.monotonic() + poll_timeout
        requests = self.wait_until_jobs_accepted(job_requests, poll_timeout=poll_timeout)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if wait_until_complete and remaining != 0.0:
            requests = self.wait_until_jobs_completed(requests, poll_timeout=remaining)
        return requests

    def _create_request_from_dictionary(
        self, job_info: dict[str, Any], background: bool = False, max_retries: int = 0
    ) -> GearmanJobRequest:
        unique = job_info.get("unique")
        if unique == "-":
            unique = job_info["data"]  # 2.0.2 uses the data itself as the key
        elif not unique:
            unique = os.urandom(self.random_unique_bytes).hex()
        if isinstance(unique, bytes):
            unique = unique.decode("utf-8", errors="surrogateescape")
        job = self.job_class(None, None, job_info["task"], unique, job_info["data"])
        return self.job_request_class(
            job,
            initial_priority=job_info.get("priority", PRIORITY_NONE),
            background=background,
            max_attempts=max_retries + 1,
        )

    def wait_until_jobs_accepted(
        self, job_requests: Sequence[GearmanJobRequest], poll_timeout: float | None = None
    ) -> list[GearmanJobRequest]:
        """Send every request not yet sent; return once the servers accepted them."""
        for request in job_requests:
            if request.state == JOB_UNKNOWN:
                self._send(request)
        return list(job_requests)

    def _send(self, request: GearmanJobRequest) -> None:
        if request.connection_attempts >= request.max_connection_attempts:
            raise ExceededConnectionAttempts(
                f"Exceeded {request.max_connection_attempts} connection attempt(s) :: {request!r}"
            )
        client = self._sync()
        job = request.job
        data = to_bytes(self.data_encoder.encode(job.data))
        priority = _PRIORITIES.get(request.priority, Priority.NORMAL)
        unique = (job.unique or "").encode("utf-8", errors="surrogateescape")
        request.connection_attempts += 1
        request.state = JOB_PENDING
        request.timed_out = False
        try:
            if request.background:
                handle: bytes = client.submit_background(
                    job.task, data, unique=unique, priority=priority
                )
                server = None
            else:
                submitted = client.submit_job(
                    job.task,
                    data,
                    unique=unique,
                    priority=priority,
                    on_status=lambda n, d: self._on_status(request, n, d),
                    on_data=lambda chunk: request.data_updates.append(self._decode(chunk)),
                    on_warning=lambda chunk: request.warning_updates.append(self._decode(chunk)),
                )
                request._job = submitted
                handle = submitted.handle or b""
                server = submitted.server
        except ConnectionLost as exc:
            request.state = JOB_UNKNOWN
            raise ServerUnavailable(str(exc)) from exc
        job.handle = handle
        job.connection = server
        request.state = JOB_CREATED

    def _decode(self, data: bytes) -> Any:
        return self.data_encoder.decode(data)

    def _on_status(self, request: GearmanJobRequest, numerator: int, denominator: int) -> None:
        request.status = _status_dict(request.job.handle, True, True, numerator, denominator)

    def wait_until_jobs_completed(
        self, job_requests: Sequence[GearmanJobRequest], poll_timeout: float | None = None
    ) -> list[GearmanJobRequest]:
        """Wait (at most ``poll_timeout`` seconds in all) for foreground jobs to finish."""
        deadline = None if poll_timeout is None else time.monotonic() + poll_timeout
        for request in job_requests:
            if request.complete or request._job is None:
                request.timed_out = False
                continue
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._settle(request, remaining)
        return list(job_requests)

    def _settle(self, request: GearmanJobRequest, timeout: float | None) -> None:
        assert request._job is not None
        try:
            result = request._job.result(timeout)
        except JobTimeout:
            request.timed_out = True
            return
        except JobException as exc:
            request.exception = self._decode(exc.data)
            request.state = JOB_FAILED
        except JobFailed:
            request.state = JOB_FAILED
        except ConnectionLost:
            request.state = JOB_UNKNOWN
        else:
            request.result = self._decode(result)
            request.state = JOB_COMPLETE
        request.timed_out = False

    # -- status ---------------------------------------------------------------------

    def get_job_status(
        self, current_request: GearmanJobRequest, poll_timeout: float | None = None
    ) -> GearmanJobRequest:
        """Fetch the server's status of one request (GET_STATUS)."""
        return self.get_job_statuses([current_request], poll_timeout=poll_timeout)[0]

    def get_job_statuses(
        self, job_requests: Sequence[GearmanJobRequest], poll_timeout: float | None = None
    ) -> list[GearmanJobRequest]:
        """Fetch the server's status of each request; fills ``request.status``."""
        client = self._sync()
        for request in job_requests:
            handle = request.job.handle
            if not handle:
                request.timed_out = True
                continue
            server = request.job.connection
            try:
                status = client.get_status(handle, server=server)
            except ConnectionLost:
                request.timed_out = True
                continue
            request.status = _status_dict(
                handle, status.known, status.running, status.numerator, status.denominator
            )
            request.timed_out = False
        return list(job_requests)
