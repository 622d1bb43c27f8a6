"""Exceptions shared by the codec, the server and the client libraries.

Protocol errors carry what goes on the wire: gearmand's ERROR code (its
``gearman_strerror`` name without the ``GEARMAN_`` prefix) and text.  Job
outcomes are separate exceptions that carry the job handle.
"""

from __future__ import annotations

__all__ = [
    "ConnectionLost",
    "GearmanError",
    "JobException",
    "JobFailed",
    "JobTimeout",
    "NoServersAvailable",
    "ProtocolError",
    "ServerError",
]


class GearmanError(Exception):
    """Base class of every error geartrain raises."""


class ProtocolError(GearmanError):
    """Input that breaks the protocol.

    Attributes:
        code: the ERROR packet's code, e.g. ``"INVALID_MAGIC"``.
        text: the ERROR packet's text.
        close: True when the byte stream cannot be trusted any more and the
            connection must be closed rather than answered.
    """

    def __init__(self, code: str, text: str, *, close: bool = False) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text
        self.close = close


class ServerError(GearmanError):
    """The server answered a request with an ERROR packet."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


class ConnectionLost(GearmanError):
    """The connection to a server closed or could not be made."""


class NoServersAvailable(ConnectionLost):
    """Every known server was tried and none could take the request."""


class JobFailed(GearmanError):
    """The job ended with WORK_FAIL."""

    def __init__(self, handle: bytes, message: str = "job failed") -> None:
        super().__init__(f"{message}: {handle.decode(errors='replace')}")
        self.handle = handle


class JobException(JobFailed):
    """The worker raised an exception (WORK_EXCEPTION); ``data`` is its payload."""

    def __init__(self, handle: bytes, data: bytes) -> None:
        super().__init__(handle, f"job raised {data[:200]!r}")
        self.data = data


class JobTimeout(GearmanError):
    """The job did not finish within the time the caller allowed."""

    def __init__(self, handle: bytes | None) -> None:
        name = handle.decode(errors="replace") if handle else "(not created)"
        super().__init__(f"job timed out: {name}")
        self.handle = handle
