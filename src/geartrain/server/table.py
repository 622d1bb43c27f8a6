"""Every job the server holds, every function it knows, and the indexes over them.

The table keeps the counts the limits and listings read (jobs per function,
bytes of job data) right as jobs come and go; it decides nothing about where
a job goes next.
"""

from __future__ import annotations

from typing import Literal

from .model import Function, Job, JobState

__all__ = ["Dropped", "JobTable"]

Dropped = Literal["dropped", "busy", "unknown"]


class JobTable:
    """Jobs by handle, functions by name, and each function's unique-key index."""

    __slots__ = ("jobs", "functions", "job_bytes", "max_idle_functions", "paused")

    def __init__(self, max_idle_functions: int) -> None:
        self.jobs: dict[bytes, Job] = {}
        self.functions: dict[bytes, Function] = {}
        self.job_bytes = 0  # data held by all jobs, for max_job_bytes
        # Functions nothing refers to stay listed up to this many (gearmand lists all).
        self.max_idle_functions = max_idle_functions
        self.paused: set[bytes] = set()  # the paused names (.pauses keeps them)

    def function(self, name: bytes) -> Function:
        """The function of that name, made on first use."""
        f = self.functions.get(name)
        if f is None:
            f = self.functions[name] = Function(name)
            f.paused = name in self.paused
        return f

    def add(self, job: Job, index: bool) -> None:
        """Hold ``job``; with ``index``, it becomes the job its unique key coalesces
        with, unless another job has the key already."""
        f = job.function
        self.jobs[job.handle] = job
        size = len(job.data)
        self.job_bytes += size
        f.data_bytes += size
        f.total += 1
        if index and job.unique and self.find(f, job.unique, job.data) is None:
            self.index(job)

    def remove(self, job: Job) -> None:
        """Let go of ``job``: out of every index and count."""
        f = job.function
        f.total -= 1
        size = len(job.data)
        self.job_bytes -= size
        f.data_bytes -= size
        self.jobs.pop(job.handle, None)
        self.unindex(job)
        if not f.total:
            self.forget(f)

    def find(self, f: Function, unique: bytes, data: bytes) -> Job | None:
        """The job a submission with this key coalesces with, if any."""
        if unique == b"-":
            # "-" coalesces jobs with identical data; no data never coalesces.
            return f.by_data.get(data) if data else None
        return f.uniques.get(unique)

    def index(self, job: Job) -> None:
        """Make the job the one its unique key (or, for "-", its data) coalesces with."""
        if job.unique == b"-":
            job.function.by_data[job.data] = job
        else:
            job.function.uniques[job.unique] = job

    def unindex(self, job: Job) -> None:
        """Its key no longer coalesces with it (it ended, or its result goes nowhere)."""
        if not job.unique:
            return
        index = job.function.by_data if job.unique == b"-" else job.function.uniques
        key = job.data if job.unique == b"-" else job.unique
        if index.get(key) is job:
            del index[key]

    def by_unique(self, unique: bytes) -> Job | None:
        """The acknowledged job with this unique key, in any function."""
        for f in self.functions.values():
            job = f.uniques.get(unique)
            if job is not None and job.state is not JobState.PENDING:
                return job
        return None

    def forget(self, f: Function) -> None:
        """Drop a function nothing refers to, once more than ``max_idle_functions``
        are known."""
        functions = self.functions
        crowded = len(functions) > self.max_idle_functions
        if crowded and f.unused() and functions.get(f.name) is f:
            del functions[f.name]

    def drop(self, name: bytes) -> Dropped:
        """``drop function``: the function of that name, matched without regard to
        case as gearmand does (an exact match first), unless something refers to it."""
        f = self.functions.get(name)
        if f is None:
            lower = name.lower()
            f = next((g for g in self.functions.values() if g.name.lower() == lower), None)
        if f is None:
            return "unknown"
        # gearmand drops a function with queued jobs and loses them; one that
        # still holds jobs or has workers is refused here instead.
        if f.workers or f.total:
            return "busy"
        del self.functions[f.name]
        return "dropped"
