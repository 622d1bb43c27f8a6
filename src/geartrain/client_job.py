"""A submitted foreground job, as the client sees it, and the status types.

A :class:`Job` is created by :meth:`geartrain.Client.submit_job` (or
``submit_batch``).  Await it for the result; iterate it for the progress
updates the worker sends.  Its outcome is settled here, from the WORK_*
packets the client routes to it; choosing servers is the client's business.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from .errors import JobCancelled, JobException, JobFailed, JobTimeout, ResultDecodeError
from .protocol import Packet, PacketType

if TYPE_CHECKING:
    from .codecs import Codec
    from .connection import Address
    from .retry import Retry

__all__ = [
    "DataUpdate",
    "Job",
    "JobStatus",
    "StatusUpdate",
    "Update",
    "WarningUpdate",
    "as_completed",
    "parse_status",
]

log = logging.getLogger("geartrain.client")

T = PacketType


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """WORK_STATUS: the worker's progress as a fraction."""

    numerator: int
    denominator: int


@dataclass(frozen=True, slots=True)
class DataUpdate:
    """WORK_DATA: a chunk of partial result."""

    data: bytes


@dataclass(frozen=True, slots=True)
class WarningUpdate:
    """WORK_WARNING: a warning from the worker; the job goes on."""

    data: bytes


Update: TypeAlias = StatusUpdate | DataUpdate | WarningUpdate


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A server's answer to GET_STATUS or GET_STATUS_UNIQUE."""

    known: bool
    """The server has the job (queued or running)."""
    running: bool
    """A worker has it."""
    numerator: int
    denominator: int
    handle: bytes | None = None
    """Set for a status by handle."""
    unique: bytes | None = None
    """Set for a status by unique key."""
    clients: int | None = None
    """Foreground clients waiting for the job (status by unique key only)."""

    @property
    def progress(self) -> float | None:
        """``numerator / denominator``, or None when the worker sent no status."""
        return self.numerator / self.denominator if self.denominator else None


def _int(raw: bytes) -> int:
    try:
        return int(raw)
    except ValueError:
        return 0


def parse_status(packet: Packet) -> JobStatus:
    """Build a :class:`JobStatus` from STATUS_RES or STATUS_RES_UNIQUE."""
    args = list(packet.args) + [b"0"] * 6
    if packet.type is T.STATUS_RES_UNIQUE:
        return JobStatus(
            known=args[1] == b"1",
            running=args[2] == b"1",
            numerator=_int(args[3]),
            denominator=_int(args[4]),
            unique=args[0],
            clients=_int(args[5]),
        )
    return JobStatus(
        known=args[1] == b"1",
        running=args[2] == b"1",
        numerator=_int(args[3]),
        denominator=_int(args[4]),
        handle=args[0],
    )


_Callbacks: TypeAlias = tuple[
    Callable[[int, int], Any] | None,
    Callable[[bytes], Any] | None,
    Callable[[bytes], Any] | None,
]


class Job:
    """A foreground job: await it for its result, iterate it for its updates.

    ``await job`` (or ``await job.result()``) returns the WORK_COMPLETE data
    (decoded by the job's codec, see :mod:`geartrain.codecs`) or raises
    :class:`~geartrain.errors.JobFailed`, :class:`~geartrain.errors.JobException`
    or :class:`~geartrain.errors.JobTimeout`.  ``async for update in job``
    yields :class:`StatusUpdate`, :class:`DataUpdate` and
    :class:`WarningUpdate` objects as they arrive and ends with the job.
    Updates are kept until read, so read them or ignore them, but do not
    iterate one job from two tasks.

    A job the client gives up on (its ``timeout`` passes, :meth:`cancel`, or
    the task awaiting :meth:`geartrain.Client.submit` is cancelled) is
    withdrawn from its server with ``cancel job``: a queued job is dropped and
    never runs; one a worker has started runs on, but its result goes nowhere.

    Attributes:
        function (str): the function name.
        data (bytes): the workload.
        unique (bytes): the unique key (empty: none).
        priority (Priority): the priority it was submitted with.
        handle (bytes | None): the job handle of the latest submission (it
            changes if the job is resubmitted); None until a server took it.
        server (Address | None): the server running the job.
        resubmits (int): times the job was submitted again after its server died.
        numerator, denominator (int): the latest WORK_STATUS.
        retry (Retry | None): the retry policy it was submitted with.
    """

    def __init__(
        self,
        client: Any,
        function: str,
        data: bytes,
        unique: bytes,
        priority: Any,
        timeout: float | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.function = function
        self.data = data
        self.unique = unique
        self.priority = priority
        self.handle: bytes | None = None
        self.server: Address | None = None
        self.resubmits = 0
        self.retry: Retry | None = None
        self.numerator = 0
        self.denominator = 0
        self._client = client
        self._link: Any = None
        self._callbacks: _Callbacks = (None, None, None)
        self._codec: Codec | None = None  # decodes the result
        self._deadline: float | None = loop.time() + timeout if timeout is not None else None
        self._future: asyncio.Future[bytes] = loop.create_future()
        self._updates: asyncio.Queue[Update | None] = asyncio.Queue()
        self._timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<Job {self.function!r} handle={self.handle!r} {state}>"

    # -- public ----------------------------------------------------------------

    def done(self) -> bool:
        """True once the job completed, failed or timed out."""
        return self._future.done()

    async def result(self) -> Any:
        """Wait for the job and return its result (see the class docstring).

        Raises:
            ResultDecodeError: the job completed with a result its codec cannot read.
        """
        data = await asyncio.shield(self._future)
        if self._codec is None:
            return data
        try:
            return self._codec.decode(data)
        except Exception as error:  # each codec has its own errors
            raise ResultDecodeError(self.handle or b"", data, error) from error

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result().__await__()

    def error(self) -> BaseException | None:
        """The exception the job ended with, or None (also while it runs)."""
        if not self._future.done():
            return None
        return self._future.exception()

    async def cancel(self) -> bool:
        """Give up on the job and withdraw it from its server (``cancel job``).

        Awaiting the job then raises :class:`~geartrain.errors.JobCancelled`.
        Returns True when the server still had the job and dropped it; False
        when the job had ended already or the server did not know it.
        """
        if self.done():
            return False
        link = self._link
        self._finish_error(JobCancelled(self.handle or b""))
        if link is None or self.handle is None:
            return False
        withdrawn: bool = await link.withdraw(self.handle, self.unique)
        return withdrawn

    async def __aiter__(self) -> AsyncIterator[Update]:
        while True:
            if self._updates.empty() and self.done():
                return
            item = await self._updates.get()
            if item is not None:
                yield item

    # -- driven by the client ------------------------------------------------

    def _arm_timer(self) -> None:
        if self._deadline is not None and self._timer is None and not self.done():
            self._timer = asyncio.get_running_loop().call_at(self._deadline, self._expire)

    def _on_work(self, packet: Packet) -> None:
        args = packet.args
        kind = packet.type
        if kind is T.WORK_COMPLETE:
            self._finish(args[1] if len(args) > 1 else b"")
        elif kind is T.WORK_FAIL:
            self._finish_error(JobFailed(self.handle or b""))
        elif kind is T.WORK_EXCEPTION:
            self._finish_error(JobException(self.handle or b"", args[1] if len(args) > 1 else b""))
        elif kind is T.WORK_STATUS:
            self.numerator = _int(args[1]) if len(args) > 1 else 0
            self.denominator = _int(args[2]) if len(args) > 2 else 0
            self._update(StatusUpdate(self.numerator, self.denominator), 0, self.numerator)
        elif kind is T.WORK_DATA:
            self._update(DataUpdate(args[1] if len(args) > 1 else b""), 1)
        elif kind is T.WORK_WARNING:
            self._update(WarningUpdate(args[1] if len(args) > 1 else b""), 2)

    def _update(self, update: Update, index: int, numerator: int = 0) -> None:
        if self.done():
            return
        self._updates.put_nowait(update)
        callback: Any = self._callbacks[index]
        if callback is None:
            return
        try:
            if isinstance(update, StatusUpdate):
                callback(update.numerator, update.denominator)
            else:
                callback(update.data)
        except Exception:
            log.exception(
                "progress callback for job %s failed", (self.handle or b"").decode(errors="replace")
            )

    def _finish(self, result: bytes) -> None:
        if self._future.done():
            return
        self._future.set_result(result)
        self._settled()

    def _finish_error(self, exc: BaseException) -> None:
        if self._future.done():
            return
        self._future.set_exception(exc)
        # Marked as retrieved: a caller who only used callbacks must not get
        # "exception was never retrieved" noise; awaiting still raises.
        self._future.exception()
        self._settled()

    def _expire(self) -> None:
        self._abandon(JobTimeout(self.handle))

    def _abandon(self, exc: BaseException) -> None:
        """End the job with ``exc`` and withdraw it from its server in the background."""
        if self.done():
            return
        link = self._link
        self._finish_error(exc)
        if link is not None and self.handle is not None:
            self._client._spawn(link.withdraw(self.handle, self.unique))

    def _settled(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._link is not None:
            self._link.forget(self)
        self._updates.put_nowait(None)  # wakes an iterator so it can end


async def as_completed(jobs: Iterable[Job]) -> AsyncIterator[Job]:
    """Yield jobs as they finish (completed, failed or timed out).

    Example::

        jobs = await client.submit_batch(("resize", img) for img in images)
        async for job in as_completed(jobs):
            try:
                print(job.handle, await job)
            except JobFailed as exc:
                print("failed", exc.handle)
    """
    waiting = {job._future: job for job in jobs}
    while waiting:
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for future in done:
            yield waiting.pop(future)
