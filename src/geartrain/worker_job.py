"""The job a worker function receives.

Its methods send WORK_* packets for the job.  They are plain (not async) and
thread-safe, so a function running in the worker's thread pool uses them just
like an ``async def`` one: from another thread the write is handed to the
event loop.  A job ends once: the first of :meth:`WorkerJob.complete`,
:meth:`~WorkerJob.fail` or :meth:`~WorkerJob.exception` (called by the
function, or by the worker with the function's outcome) wins, later ones do
nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from .codecs import Codec, Payload, encode, loads, to_bytes
from .connection import Connection
from .errors import ConnectionLost
from .protocol import PacketType

__all__ = ["WorkerJob", "describe_exception"]

log = logging.getLogger("geartrain.worker")

T = PacketType


def describe_exception(exc: BaseException) -> str:
    """The WORK_EXCEPTION payload for an exception: ``"ValueError: bad input"``."""
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


class WorkerJob:
    """A job assigned to this worker.

    Attributes:
        handle: the server's job handle.
        function: the function name.
        unique: the unique key (empty if the server did not send one).
        data: the workload.
        reducer: the reducer name of a map/reduce job (JOB_ASSIGN_ALL), else empty.
        attempt: which attempt at the job this is, 1 for the first; None where the
            server does not say (gearmand: the retries extension is geartrain's).
        attempts: the attempts the job's retry policy allows in all (1: no
            retry), or None as for ``attempt``.
    """

    def __init__(
        self,
        conn: Connection,
        handle: bytes,
        function: str,
        unique: bytes,
        data: bytes,
        reducer: bytes = b"",
    ) -> None:
        self.handle = handle
        self.function = function
        self.unique = unique
        self.data = data
        self.reducer = reducer
        self.attempt: int | None = None
        self.attempts: int | None = None
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        self._finished = False
        self._lock = threading.Lock()
        self._codec: Codec | None = None
        self._outcome: str | None = None  # how it ended, for the worker's log line

    def __repr__(self) -> str:
        return f"<WorkerJob {self.function!r} handle={self.handle!r}>"

    @property
    def _name(self) -> str:
        """The handle as text, for the log."""
        return self.handle.decode(errors="replace")

    @property
    def attempts_left(self) -> int | None:
        """Attempts the policy still allows after this one (0: this is the last),
        or None where the server does not say."""
        if self.attempt is None or self.attempts is None:
            return None
        return max(0, self.attempts - self.attempt)

    @property
    def text(self) -> str:
        """The workload decoded as UTF-8."""
        return self.data.decode("utf-8")

    def json(self) -> Any:
        """The workload decoded as JSON (see :func:`geartrain.codecs.loads`)."""
        return loads(self.data)

    @property
    def value(self) -> Any:
        """The workload decoded by the function's codec (JSON unless registered with another)."""
        return self._codec.decode(self.data) if self._codec is not None else loads(self.data)

    @property
    def finished(self) -> bool:
        """True once the job was completed, failed or raised."""
        return self._finished

    # -- progress ------------------------------------------------------------------

    def send_status(self, numerator: int, denominator: int) -> None:
        """Report progress (WORK_STATUS), e.g. ``send_status(3, 10)``."""
        self._send(T.WORK_STATUS, str(int(numerator)).encode(), str(int(denominator)).encode())

    def send_data(self, data: Payload) -> None:
        """Send a chunk of partial result (WORK_DATA)."""
        self._send(T.WORK_DATA, to_bytes(data))

    def send_warning(self, data: Payload) -> None:
        """Send a warning (WORK_WARNING); the job goes on."""
        self._send(T.WORK_WARNING, to_bytes(data))

    # -- ending ------------------------------------------------------------------------

    def complete(self, result: Any = b"") -> None:
        """End the job with a result (WORK_COMPLETE).

        Bytes go as they are, str as UTF-8, None as empty, anything else
        through the function's codec (JSON by default).

        Raises:
            TypeError: the codec cannot encode the result.
        """
        data = encode(result, self._codec)
        if self._end("completed"):
            self._send(T.WORK_COMPLETE, data)

    def fail(self) -> None:
        """End the job as failed (WORK_FAIL)."""
        if self._end("failed"):
            self._send(T.WORK_FAIL)

    def exception(self, data: Payload) -> None:
        """End the job with an exception (WORK_EXCEPTION).

        Clients that did not ask for exceptions see a failure instead.
        """
        payload = to_bytes(data)
        if self._end(f"raised {payload[:200].decode(errors='replace')}"):
            self._send(T.WORK_EXCEPTION, payload)

    def _end(self, outcome: str) -> bool:
        with self._lock:
            if self._finished:
                return False
            self._finished = True
            self._outcome = outcome
            return True

    def _send(self, packet_type: PacketType, *args: bytes) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._write(packet_type, (self.handle, *args))
        else:
            try:
                self._loop.call_soon_threadsafe(self._write, packet_type, (self.handle, *args))
            except RuntimeError:  # the worker's loop is gone
                log.debug("%s for %s dropped: worker stopped", packet_type.name, self._name)

    def _write(self, packet_type: PacketType, args: tuple[bytes, ...]) -> None:
        try:
            self._conn.send(packet_type, *args)
        except ConnectionLost:
            log.debug("%s for %s dropped: connection closed", packet_type.name, self._name)
