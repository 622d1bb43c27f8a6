"""Which jobs a console list shows: one state, filtered, sorted and paged.

Totals come from the core's per-function, per-priority counts where the filter
allows (function and priority: O(functions)); a page walks the queues only as
far as its offset, never copying them.  A text filter must look at each job's
payload, so it looks at no more than :data:`SCAN_LIMIT` jobs and says when its
count stopped there (``exact`` False).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from ..priority import Priority
from ..server.model import Function, Job, JobState
from .queued import WALK, merged, queued_page

if TYPE_CHECKING:
    from ..server.core import JobServer
    from ..store.records import FailedJob

__all__ = [
    "LIVE_STATES",
    "PREVIEW",
    "SCAN_LIMIT",
    "SORTS",
    "STATES",
    "JobFilter",
    "Page",
    "Scan",
    "in_preview",
    "live_jobs",
    "failed_jobs",
    "page",
    "state_of",
]

STATES = ("queued", "running", "scheduled", "retrying", "failed")
LIVE_STATES = ("queued", "running", "scheduled", "retrying")
SORTS = ("due", "age", "-age")
PREVIEW = 200
"""Bytes of a payload shown in lists, and searched by the text filter."""
SCAN_LIMIT = 50_000
"""Jobs a text filter looks at, at most, for one answer."""

QUEUED, RUNNING, SCHEDULED = JobState.QUEUED, JobState.RUNNING, JobState.SCHEDULED


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What a list (or a bulk action) selects; None matches everything."""

    state: str = "queued"
    function: bytes | None = None
    priority: int | None = None
    unique: bytes | None = None
    text: bytes | None = None
    sort: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, Any]) -> JobFilter:
        """From query parameters (or a bulk action's ``filter`` object).

        Raises:
            ValueError: a parameter with a value outside its set (one line, for the user).
        """
        get = query.get
        state = str(get("state") or "queued")
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        priority = get("priority")
        level = None
        if priority is not None:
            try:
                level = Priority(str(priority)).level
            except ValueError:
                raise ValueError("priority must be high, normal or low") from None
        sort = get("sort")
        if sort is not None and sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")

        def raw(key: str) -> bytes | None:
            value = get(key)
            return str(value).encode() if value not in (None, "") else None

        return cls(state, raw("function"), level, raw("unique"), raw("q"), sort)

    def order(self) -> str:
        """The sort: due time for waiting retries and scheduled jobs, else age."""
        if self.sort is not None:
            return self.sort
        return "due" if self.state in ("scheduled", "retrying") else "age"

    def matches(self, function: bytes, priority: int, unique: bytes, data: bytes) -> bool:
        return (
            (self.function is None or function == self.function)
            and (self.priority is None or priority == self.priority)
            and (self.unique is None or unique == self.unique)
            and (self.text is None or in_preview(self.text, data))
        )


def in_preview(text: bytes, data: bytes) -> bool:
    """Whether ``text`` is in the payload's preview (found in place: a slice
    would copy each payload)."""
    return text in data if len(data) <= PREVIEW else data.find(text, 0, PREVIEW) >= 0


def state_of(job: Job) -> str:
    """A live job's state as the console names it (a waiting retry is "retrying";
    "pending" while the store has not yet taken a new job)."""
    if job.state is SCHEDULED:
        return "retrying" if job.failures else "scheduled"
    return _NAMES[job.state]


_NAMES = {
    JobState.PENDING: "pending",
    JobState.QUEUED: "queued",
    JobState.RUNNING: "running",
    JobState.DONE: "done",
}


@dataclass(slots=True)
class Page:
    total: int
    exact: bool
    items: list[Job]


def _functions(core: JobServer, flt: JobFilter) -> list[Function]:
    if flt.function is None:
        return list(core.functions.values())
    f = core.functions.get(flt.function)
    return [f] if f is not None else []


def _queues(core: JobServer, flt: JobFilter) -> tuple[list[deque[Job]], int]:
    """The queues the filter's function and priority select, and their live jobs."""
    priorities = (flt.priority,) if flt.priority is not None else (0, 1, 2)
    queues: list[deque[Job]] = []
    live = 0
    for f in _functions(core, flt):
        if f.queues is None:
            continue
        for p in priorities:
            if f.queued[p]:
                queues.append(f.queues[p])
                live += f.queued[p]
    return queues, live


def _created(job: Job) -> float:
    return job.created_at


def _due(job: Job) -> float:
    return job.when


def live_jobs(core: JobServer, flt: JobFilter) -> Iterator[Job]:
    """Every job matching the filter, in the list's order (not counted, not paged)."""
    order = flt.order()
    found: Iterable[Job]
    if flt.unique is not None:
        # The unique-key index: one job per function at most.
        found = sorted(
            (
                j
                for f in _functions(core, flt)
                if (j := f.uniques.get(flt.unique)) is not None and state_of(j) == flt.state
            ),
            key=_due if order == "due" else _created,
            reverse=order == "-age",
        )
    elif flt.state == "queued":
        found = merged(_queues(core, flt)[0], order == "-age")
    elif flt.state == "running":
        found = sorted(
            (j for peer in core.peers for j in peer.jobs if j.state is RUNNING),
            key=_created,
            reverse=order == "-age",
        )
    else:
        retrying = flt.state == "retrying"
        found = [j for j in core.queues.waiting() if bool(j.failures) is retrying]
        found.sort(key=_due if order == "due" else _created, reverse=order == "-age")
    for job in found:
        if flt.matches(job.function.name, job.priority, job.unique, job.data):
            yield job


def page(core: JobServer, flt: JobFilter, offset: int, limit: int) -> Page:
    """One page of live jobs, with the number matching the filter."""
    if flt.state == "queued" and flt.unique is None and flt.text is None:
        # The total from the counts, and the page from the queues.
        queues, live = _queues(core, flt)
        if offset > WALK and sum(map(len, queues)) != live:
            # Entries of cancelled jobs would make a deep page walk every job before
            # it: drop them once, and read the queues by position from then on.
            for f in _functions(core, flt):
                core.queues.compact(f)
        return Page(live, True, queued_page(queues, live, offset, limit, flt.order() == "-age"))
    items: list[Job] = []
    total = 0
    scan = Scan(core, flt)
    for job in scan:
        if offset <= total < offset + limit:
            items.append(job)
        total += 1
    return Page(total, not scan.capped, items)


class Scan:
    """The live jobs matching a filter; with a text part, looking at no more than
    :data:`SCAN_LIMIT` jobs (``capped`` tells, once iterated, that it stopped there)."""

    def __init__(self, core: JobServer, flt: JobFilter) -> None:
        self.core = core
        self.filter = flt
        self.capped = False

    def __iter__(self) -> Iterator[Job]:
        flt, text = self.filter, self.filter.text
        if text is None:
            yield from live_jobs(self.core, flt)
            return
        if flt.state == "queued" and flt.unique is None:
            yield from self._queued(text)
            return
        # Count what the scan looks at, not what matches.
        plain = JobFilter(flt.state, flt.function, flt.priority, flt.unique, None, flt.sort)
        looked = live_jobs(self.core, plain)
        for job in islice(looked, SCAN_LIMIT):
            if in_preview(text, job.data):
                yield job
        self.capped = next(looked, None) is not None

    def _queued(self, text: bytes) -> list[Job]:
        """Queued jobs with the text: each queue read straight through (no merge),
        the few that match sorted by age."""
        found: list[Job] = []
        room = SCAN_LIMIT
        for queue in _queues(self.core, self.filter)[0]:
            found += [
                j
                for j in islice(queue, room)
                # in_preview inlined: this loop is the filter's whole cost
                if (
                    text in j.data if len(j.data) <= PREVIEW else j.data.find(text, 0, PREVIEW) >= 0
                )
                and j.state is QUEUED
            ]
            if len(queue) > room:
                self.capped = True
                break
            room -= len(queue)
        found.sort(key=_created, reverse=self.filter.order() == "-age")
        return found


async def failed_jobs(core: JobServer, flt: JobFilter) -> list[FailedJob]:
    """The failed set's records matching the filter, oldest first (or newest with -age)."""
    records = await core.failed.records(flt.function)
    found = [r for r in records if flt.matches(r.function, r.priority, r.unique, r.data)]
    if flt.sort == "-age":
        found.reverse()
    return found
