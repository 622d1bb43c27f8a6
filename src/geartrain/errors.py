"""Exceptions shared by the codec, the server and the client libraries.

Protocol errors carry what goes on the wire: gearmand's ERROR code (its
``gearman_strerror`` name without the ``GEARMAN_`` prefix) and text.  Job
outcomes are separate exceptions that carry the job handle.
"""

from __future__ import annotations

__all__ = [
    "ConnectionLost",
    "GearmanError",
    "JobCancelled",
    "JobException",
    "JobFailed",
    "JobTimeout",
    "NoResult",
    "NoServersAvailable",
    "ProtocolError",
    "ResultDecodeError",
    "ServerError",
]


class GearmanError(Exception):
    """Base class of every error geartrain raises."""


class ProtocolError(GearmanError):
    """Input that breaks the protocol.

    Attributes:
        code: the ERROR packet's code, e.g. ``"INVALID_MAGIC"``.
        text: the ERROR packet's text.
    """

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


class ServerError(GearmanError):
    """The server answered a request with an ERROR packet."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


class ConnectionLost(GearmanError, ConnectionError):
    """The connection to a server closed or could not be made (also a ``ConnectionError``)."""


class NoServersAvailable(ConnectionLost):
    """Every known server was tried and none could take the request."""


class JobFailed(GearmanError):
    """The job ended with WORK_FAIL.

    The server sends the same bare WORK_FAIL when a worker fails the job, when
    an admin cancels it (``cancel job``) and when its CAN_DO_TIMEOUT expires, so
    a client cannot tell these apart.

    Attributes:
        handle: the job handle.
        reason: why it failed, when known (else ``"job failed"``).
    """

    def __init__(self, handle: bytes, reason: str = "job failed") -> None:
        super().__init__(f"{reason}: {handle.decode(errors='replace')}")
        self.handle = handle
        self.reason = reason


class JobCancelled(JobFailed):
    """The client withdrew the job (:meth:`geartrain.Job.cancel`)."""

    def __init__(self, handle: bytes) -> None:
        super().__init__(handle, "job cancelled")


class JobException(JobFailed):
    """The worker raised an exception (WORK_EXCEPTION).

    Attributes:
        data: the raw payload, as the worker sent it.
        text: the payload decoded as UTF-8 (undecodable bytes replaced), e.g.
            ``"KeyError: 'x'"``; also the exception's message.
    """

    def __init__(self, handle: bytes, data: bytes) -> None:
        self.data = data
        self.text = data.decode("utf-8", errors="replace")
        super().__init__(handle, self.text[:500] or "job raised an exception")


class NoResult(GearmanError, LookupError):
    """No result is kept for this handle: no such job, nobody asked to keep its
    result, or it expired (also a ``LookupError``).

    Attributes:
        handle: the job handle.
    """

    def __init__(self, handle: bytes) -> None:
        name = handle.decode(errors="replace")
        super().__init__(f"no result kept for {name} (unknown handle, not kept, or expired)")
        self.handle = handle


class JobTimeout(GearmanError, TimeoutError):
    """The job did not finish within the time the caller allowed (also a ``TimeoutError``).

    The client withdraws the job (``cancel job``) as it gives up on it.
    """

    def __init__(self, handle: bytes | None) -> None:
        name = handle.decode(errors="replace") if handle else "(not created)"
        super().__init__(f"job timed out: {name}")
        self.handle = handle


class ResultDecodeError(GearmanError, ValueError):
    """A job's result is not what the codec that should decode it reads (also a ``ValueError``).

    The job completed: a worker in another language may answer text where the
    client sent JSON.  Send the data as bytes or str to get the result as bytes.

    Attributes:
        handle: the job handle.
        data: the result, as the worker sent it.
    """

    def __init__(self, handle: bytes, data: bytes, reason: object) -> None:
        name = handle.decode(errors="replace")
        super().__init__(f"the result of job {name} cannot be decoded: {reason}")
        self.handle = handle
        self.data = data
