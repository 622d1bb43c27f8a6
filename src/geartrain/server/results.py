"""Results of background jobs, kept for a while to be fetched by handle.

A background job's result is normally lost: nobody waits for it.  When its
function's policy says ``keep_results`` (the settings file), or its submitter
asked with the ``keep_result`` option (OPTION_REQ, see
:mod:`geartrain.extensions`), the server keeps how it ended, WORK_COMPLETE's
data or the failure with WORK_EXCEPTION's data, for that long after the end.  Then it is
purged (by the injected clock and timers: when the first one's time is up, and
whenever the set is touched).  The set is bounded by count and by bytes; the
oldest records go first.

A submission's opt-in is kept as a *pending* record from the start, so that it
survives a restart as the job does.  With a durable store every change is
written by the same group-commit writer as the queue (``persist``).

Anyone may wait for a job to end (the ``result`` admin command):
:meth:`Results.wait` returns once :meth:`Results.ended` is told of it.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..store.records import KeptResult
from .model import JobState

if TYPE_CHECKING:
    from .model import Job

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_RESULTS",
    "PENDING",
    "Results",
    "look_up",
    "wait_for_end",
]

DEFAULT_MAX_RESULTS = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

PENDING = "pending"

_RECORD_BYTES = 100  # what a record costs beside its handle, name and data, roughly

Persist = Callable[[list[KeptResult], list[bytes]], None]

Found = tuple[str, KeptResult | None]
"""A job's status, and its kept result once it ended (see :func:`look_up`)."""

Remote = Callable[[bytes], Awaitable[Found | None]]
"""Cluster mode: what the shared store knows of a job this member does not hold."""

REMOTE_POLL = (0.1, 1.0)
"""Seconds between looks at the shared store while waiting: first, and at most."""


def _size(record: KeptResult) -> int:
    return len(record.data) + len(record.handle) + len(record.function) + _RECORD_BYTES


class Results:
    """The kept results of one server, oldest first; ``clock`` gives epoch seconds."""

    def __init__(
        self,
        clock: Callable[[], float],
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
        max_results: int = DEFAULT_MAX_RESULTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.clock = clock
        self.call_later = call_later
        self._timer: Any = None
        self._timer_at = 0.0
        self.max_results = max_results
        self.max_bytes = max_bytes
        self.bytes = 0
        self._records: OrderedDict[bytes, KeptResult] = OrderedDict()
        self._expiry: list[tuple[float, bytes]] = []  # a heap of (expires_at, handle)
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        # Set by the app when there is a durable store: (added, removed handles).
        self.persist: Persist | None = None
        # Set in cluster mode: the shared store's answer for jobs not held here.
        self.remote: Remote | None = None

    def __len__(self) -> int:
        return len(self._records)

    def bound(self, max_results: int, max_bytes: int) -> None:
        self.max_results = max_results
        self.max_bytes = max_bytes
        self._changed([], self._trim())

    # -- the core's side -------------------------------------------------------

    def expect(self, handle: bytes, function: bytes, keep: float) -> None:
        """A submitter asked for the result of ``handle``, kept ``keep`` seconds."""
        if keep <= 0:
            return
        old = self._records.get(handle)
        if old is not None and old.status == PENDING and old.keep >= keep:
            return
        self._put(KeptResult(handle, function, PENDING, b"", keep))

    def ended(self, job: Job, status: str, data: bytes, policy_keep: float) -> None:
        """``job`` is over (``status`` as :class:`KeptResult` says): keep its result
        if its policy or its submitter asked, and wake whoever waits for it.  A
        record of the same handle is the same job's (a retried failed job keeps its
        handle): its time to keep still holds."""
        handle = job.handle
        if job.background:
            old = self._records.get(handle)
            keep = max(policy_keep, old.keep if old is not None else 0.0)
            if keep > 0:
                record = KeptResult(handle, job.function.name, status, data, keep, self.clock())
                self._put(record)
                self._expires(record)
                self.purge()
        for future in self._waiters.pop(handle, ()):
            if not future.done():
                future.set_result(None)

    @property
    def waited_for(self) -> bool:
        """Someone waits for a job to end."""
        return bool(self._waiters)

    def load(self, records: Iterable[KeptResult]) -> None:
        """The records the store kept, at start (oldest first)."""
        for record in records:
            self._records[record.handle] = record
            self.bytes += _size(record)
            if record.ended_at:
                self._expires(record)
        self.purge()
        self._changed([], self._trim())

    # -- the admin's and the console's side --------------------------------------

    def get(self, handle: bytes) -> KeptResult | None:
        """The record of ``handle`` (pending or ended), or None: none kept, or expired."""
        self.purge()
        return self._records.get(handle)

    async def wait(self, handle: bytes, timeout: float) -> None:
        """Return when ``handle``'s job ends, or after ``timeout`` seconds."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(handle, []).append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(handle)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[handle]

    def purge(self) -> None:
        """Drop the results whose time is up."""
        now = self.clock()
        expiry, records = self._expiry, self._records
        removed: list[bytes] = []
        while expiry and expiry[0][0] <= now:
            expires_at, handle = heapq.heappop(expiry)
            record = records.get(handle)
            if record is not None and record.expires_at == expires_at:
                del records[handle]
                self.bytes -= _size(record)
                removed.append(handle)
        self._changed([], removed)
        self._schedule()

    def _expires(self, record: KeptResult) -> None:
        heapq.heappush(self._expiry, (record.expires_at, record.handle))
        self._schedule()

    def _schedule(self) -> None:
        """A timer for the first expiry, so results leave an idle server too."""
        if self.call_later is None or not self._expiry:
            return
        first = self._expiry[0][0]
        if self._timer is not None:
            if self._timer_at <= first:
                return
            self._timer.cancel()
        self._timer_at = first
        self._timer = self.call_later(max(0.0, first - self.clock()), self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self.purge()

    def close(self) -> None:
        """Stop the timer (the server stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- keeping ---------------------------------------------------------------

    def _put(self, record: KeptResult) -> None:
        old = self._records.pop(record.handle, None)
        if old is not None:
            self.bytes -= _size(old)
        self._records[record.handle] = record
        self.bytes += _size(record)
        self._changed([record], self._trim())

    def _trim(self) -> list[bytes]:
        """Drop the oldest records past the bounds (the newest always stays)."""
        records = self._records
        removed: list[bytes] = []
        while len(records) > 1 and (len(records) > self.max_results or self.bytes > self.max_bytes):
            handle, record = records.popitem(last=False)
            self.bytes -= _size(record)
            removed.append(handle)
        return removed

    def _changed(self, added: list[KeptResult], removed: list[bytes]) -> None:
        if (added or removed) and self.persist is not None:
            self.persist([r for r in added if r.handle not in removed], removed)


_STATE_WORDS = {
    JobState.PENDING: "queued",
    JobState.SCHEDULED: "scheduled",
    JobState.QUEUED: "queued",
    JobState.RUNNING: "running",
}


def look_up(results: Results, jobs: Mapping[bytes, Job], handle: bytes) -> Found | None:
    """What is known of ``handle``'s result, the one rule the admin command and the
    console share: "queued", "scheduled" or "running" (no record) while the job
    is held here (a failed job run again included); else its status and record
    once it ended with a kept result; None otherwise (no such job, not kept, or
    expired)."""
    job = jobs.get(handle)
    if job is not None and job.state is not JobState.DONE and not job.ignored:
        return _STATE_WORDS[job.state], None
    record = results.get(handle)
    if record is not None and record.status != PENDING:
        return record.status, record
    return None


async def wait_for_end(
    results: Results, jobs: Mapping[bytes, Job], handle: bytes, wait: float
) -> Found | None:
    """:func:`look_up`, after waiting up to ``wait`` seconds for the job to end; in
    cluster mode, a job this member does not hold is looked up in the shared store
    (again and again while it waits)."""
    found = look_up(results, jobs, handle)
    if found is None and results.remote is not None:
        return await _wait_remote(results.remote, handle, wait)
    if wait > 0 and found is not None and found[1] is None:
        await results.wait(handle, wait)
        found = look_up(results, jobs, handle)
    return found


async def _wait_remote(remote: Remote, handle: bytes, wait: float) -> Found | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    pause, longest = REMOTE_POLL
    while True:
        found = await remote(handle)
        if found is None:
            return None  # no such job, or it ended with nothing kept
        record = found[1]
        if record is not None and record.status != PENDING:
            return found  # ended, and its result is kept
        left = deadline - loop.time()
        if left <= 0:
            return found
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, longest)
