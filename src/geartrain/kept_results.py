"""Kept results of background jobs as the libraries see them.

A geartrain server keeps a background job's result when its function's policy
or its submitter asks (``keep_result``); the text admin command
``result HANDLE [WAIT]`` answers one line: ``OK STATUS [BASE64]``, or
``ERR UNKNOWN_JOB`` when there is no such job and no kept result.  This module
reads that answer, waits in rounds the server allows, and turns an ended job
into its value or the exception a foreground job would have raised.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import (
    JobCancelled,
    JobException,
    JobFailed,
    JobTimeout,
    NoResult,
    ResultDecodeError,
    ServerError,
)

if TYPE_CHECKING:
    from .codecs import Codec
    from .connection import Connection

__all__ = [
    "ENDED",
    "MAX_WAIT",
    "BackgroundJob",
    "JobResult",
    "ask_result",
    "outcome",
    "parse_result_answer",
]

ENDED = frozenset({"complete", "fail", "exception", "timeout", "worker_lost", "cancelled"})
"""The statuses of a job that has ended; the others are queued, scheduled, running."""

MAX_WAIT = 600.0
"""Seconds one ``result HANDLE WAIT`` may wait on the server (its own limit)."""

_REASONS = {
    "fail": "job failed",
    "timeout": "job timed out on its worker",
    "worker_lost": "job's worker was lost",
}


@dataclass(frozen=True, slots=True)
class JobResult:
    """What a server says of a background job's result."""

    status: str
    """"complete", a failure ("fail", "exception", "timeout", "worker_lost",
    "cancelled"), or, before the end, "queued", "scheduled" or "running"."""
    data: bytes = b""
    """WORK_COMPLETE's data, or WORK_EXCEPTION's."""

    @property
    def ended(self) -> bool:
        return self.status in ENDED


def parse_result_answer(answer: bytes) -> JobResult | None:
    """The answer to ``result HANDLE``; None for ``ERR UNKNOWN_JOB``.

    Raises:
        ServerError: any other ERR (gearmand: UNKNOWN_COMMAND), or an answer
            that is not ``OK STATUS [BASE64]``.
    """
    line = answer.rstrip(b"\r\n")
    if line.startswith(b"ERR"):
        words = line.split(b" ", 2)
        code = words[1].decode(errors="replace") if len(words) > 1 else "UNKNOWN"
        if code == "UNKNOWN_JOB":
            return None
        text = words[2].decode(errors="replace") if len(words) > 2 else ""
        raise ServerError(code, text)
    words = line.split(b" ")
    if words[0] != b"OK" or len(words) not in (2, 3):
        raise ServerError("PROTOCOL", f"not a result answer: {line[:80]!r}")
    try:
        data = base64.b64decode(words[2], validate=True) if len(words) == 3 else b""
    except binascii.Error:
        raise ServerError("PROTOCOL", f"result data is not base64: {line[:80]!r}") from None
    return JobResult(words[1].decode(errors="replace"), data)


async def ask_result(
    conn: Connection, handle: bytes, timeout: float | None, io_timeout: float | None
) -> JobResult | None:
    """Ask ``conn``'s server for ``handle``'s result, waiting up to ``timeout``
    seconds (None: until it ends; 0: not at all) for a job that has not ended.

    Raises:
        ServerError: as :func:`parse_result_answer`.
        ConnectionLost: the server did not answer.
    """
    loop = asyncio.get_running_loop()
    deadline = math.inf if timeout is None else loop.time() + timeout
    line = b"result " + handle
    while True:
        left = deadline - loop.time()
        wait = min(max(0.0, left), MAX_WAIT)
        command = line + b" %.3f" % wait if wait > 0 else line
        answer = await conn.text(command, listing=False, timeout=_answer_time(wait, io_timeout))
        result = parse_result_answer(answer)
        if result is None or result.ended or deadline - loop.time() <= 0:
            return result


def _answer_time(wait: float, io_timeout: float | None) -> float | None:
    return None if io_timeout is None else wait + io_timeout


def outcome(handle: bytes, result: JobResult | None, codec: Codec | None = None) -> Any:
    """A kept result as a foreground job gives it: the data (decoded by ``codec``
    if given), or the exception the job ended with.

    Raises:
        NoResult: no result is kept.
        JobTimeout: the job has not ended (it keeps running).
        JobException, JobCancelled, JobFailed: how the job ended.
        ResultDecodeError: ``codec`` cannot read the data.
    """
    if result is None:
        raise NoResult(handle)
    if not result.ended:
        raise JobTimeout(handle)
    if result.status == "exception":
        raise JobException(handle, result.data)
    if result.status == "cancelled":
        raise JobCancelled(handle)
    if result.status != "complete":
        raise JobFailed(handle, _REASONS.get(result.status, f"job ended: {result.status}"))
    if codec is None:
        return result.data
    try:
        return codec.decode(result.data)
    except Exception as error:  # each codec has its own errors
        raise ResultDecodeError(handle, result.data, error) from error


class BackgroundJob(bytes):
    """The handle of a background job, as ``Client.submit_background`` returns it:
    it is the handle (bytes, as before), and ``await job.result(timeout=...)``
    fetches the job's kept result (see ``Client.result``)."""

    _fetch: Callable[[bytes, float | None], Awaitable[Any]]

    def __new__(
        cls, handle: bytes, fetch: Callable[[bytes, float | None], Awaitable[Any]]
    ) -> BackgroundJob:
        job = super().__new__(cls, handle)
        job._fetch = fetch
        return job

    @property
    def handle(self) -> bytes:
        return bytes(self)

    def __reduce__(self) -> tuple[type[bytes], tuple[bytes]]:
        return bytes, (bytes(self),)  # pickled (or copied) as the plain handle

    async def result(self, timeout: float | None = None) -> Any:
        """Wait up to ``timeout`` seconds (None: until it ends) and return the
        job's result, decoded as the submission's data was encoded.

        Raises:
            NoResult: the server keeps no result of this job.
            JobTimeout: it has not ended within ``timeout`` (it keeps running).
            JobException, JobFailed: how it ended.
        """
        return await self._fetch(bytes(self), timeout)
