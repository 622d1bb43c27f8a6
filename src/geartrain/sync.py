"""Blocking facades for scripts, threads and web apps.

``geartrain.sync.Client``, ``Worker`` and ``Admin`` have the names and methods
of the asyncio classes, but block.  They are thin wrappers: each call runs the
asyncio implementation on one private event loop in a daemon thread shared by
the whole process, and waits for it.  They are safe to use from many threads.

Progress callbacks given to :meth:`Client.submit_job` run on that loop's
thread, so keep them short.  Worker functions run as with the asyncio worker:
plain functions in its thread pool, ``async def`` ones on the private loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from datetime import timedelta
from types import FrameType
from typing import Any, TypeVar, overload

from . import admin as _admin
from . import client as _client
from . import client_job as _job
from . import kept_results as _kept
from . import worker as _worker
from .admin import FailedJobInfo, FunctionStatus, JobInfo, PriorityStatus, WorkerInfo
from .client import JobRequest, Priority
from .client_job import JobStatus, Update
from .codecs import Codec, Payload
from .connection import Address, ServerSpec
from .durations import Duration
from .errors import JobTimeout
from .kept_results import JobResult
from .retry import Retry
from .worker import JobFunction, WorkerJob, registration

__all__ = [
    "Admin",
    "Client",
    "Job",
    "JobRequest",
    "Priority",
    "Worker",
    "WorkerJob",
    "as_completed",
]

R = TypeVar("R")
F = TypeVar("F", bound=JobFunction)


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._main, name="geartrain-sync-loop", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, R], timeout: float | None = None) -> R:
        """Run ``coro`` on the loop and wait for its result.

        Raises:
            TimeoutError: it did not finish within ``timeout`` (it is cancelled).
        """
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError(
                "a geartrain.sync call was made from geartrain's own event loop; "
                "use the asyncio classes there"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # the coroutine's own TimeoutError (JobTimeout)
                raise
            future.cancel()
            raise TimeoutError(f"no result within {timeout}s") from None
        except BaseException:
            future.cancel()
            raise

    def call(self, func: Callable[..., Any], *args: Any) -> None:
        """Schedule a plain call on the loop."""
        self.loop.call_soon_threadsafe(func, *args)


_runner_lock = threading.Lock()
_runner: _LoopThread | None = None


def _loop() -> _LoopThread:
    global _runner
    with _runner_lock:
        # A forked child does not inherit the thread: start a new one.
        if _runner is None or _runner.pid != os.getpid():
            _runner = _LoopThread()
        return _runner


async def _make(factory: Callable[[], R]) -> R:
    # Build asyncio objects on the loop thread, where they will live.
    return factory()


class BackgroundJob(bytes):
    """A background job's handle (bytes) whose ``result(timeout=...)`` fetches its
    kept result (see :class:`geartrain.BackgroundJob`)."""

    _job: _kept.BackgroundJob
    _runner: _LoopThread

    def __new__(cls, job: _kept.BackgroundJob, runner: _LoopThread) -> BackgroundJob:
        handle = super().__new__(cls, job)
        handle._job, handle._runner = job, runner
        return handle

    @property
    def handle(self) -> bytes:
        return bytes(self)

    def __reduce__(self) -> tuple[type[bytes], tuple[bytes]]:
        return bytes, (bytes(self),)  # pickled (or copied) as the plain handle

    def result(self, timeout: float | None = None) -> Any:
        """Wait up to ``timeout`` seconds (None: until it ends) and return the result."""
        return self._runner.run(self._job.result(timeout))


class Job:
    """A blocking view of :class:`geartrain.Job`: ``job.result()`` waits for it."""

    def __init__(self, job: _job.Job, runner: _LoopThread) -> None:
        self._job = job
        self._runner = runner

    def __repr__(self) -> str:
        return repr(self._job)

    @property
    def handle(self) -> bytes | None:
        """The job handle (it changes if the job is resubmitted)."""
        return self._job.handle

    @property
    def server(self) -> Address | None:
        """The server running the job."""
        return self._job.server

    @property
    def function(self) -> str:
        return self._job.function

    def done(self) -> bool:
        """True once the job completed, failed or timed out."""
        return self._job.done()

    def error(self) -> BaseException | None:
        """The exception the job ended with, or None."""
        return self._job.error()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the result (decoded as by the asyncio :meth:`geartrain.Job.result`).

        Raises:
            JobFailed, JobException, ResultDecodeError: as the asyncio
                :meth:`geartrain.Job.result`.
            JobTimeout: the job's own timeout passed, or no result within
                ``timeout`` seconds of waiting here (the job goes on).
        """
        try:
            return self._runner.run(self._job.result(), timeout)
        except TimeoutError:
            raise JobTimeout(self._job.handle) from None

    def __iter__(self) -> Iterator[Update]:
        """Yield progress updates as they arrive, until the job ends."""
        return _iterate(self._job.__aiter__(), self._runner)


def _iterate(agen: AsyncIterator[R], runner: _LoopThread) -> Iterator[R]:
    while True:
        try:
            yield runner.run(_anext(agen))
        except StopAsyncIteration:
            return


async def _anext(agen: AsyncIterator[R]) -> R:
    return await agen.__anext__()


def as_completed(jobs: Iterable[Job]) -> Iterator[Job]:
    """Yield jobs as they finish (see :func:`geartrain.as_completed`)."""
    jobs = list(jobs)
    if not jobs:
        return
    by_id = {id(job._job): job for job in jobs}
    runner = jobs[0]._runner
    for done in _iterate(_job.as_completed([job._job for job in jobs]), runner):
        yield by_id[id(done)]


class Client:
    """Blocking :class:`geartrain.Client` (same arguments and methods)."""

    def __init__(self, servers: ServerSpec | Iterable[ServerSpec] | None = None, **kwargs: Any):
        self._runner = _loop()
        self._client = self._runner.run(_make(lambda: _client.Client(servers, **kwargs)))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def servers(self) -> list[Address]:
        return self._client.servers

    def close(self) -> None:
        """Close every connection."""
        self._runner.run(self._client.close())

    def submit(
        self,
        function: str,
        data: Any = b"",
        *,
        unique: Payload | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
        retry: Retry | None = None,
    ) -> Any:
        """Run a job and return its result (see :meth:`geartrain.Client.submit`)."""
        return self._runner.run(
            self._client.submit(
                function, data, unique=unique, priority=priority, timeout=timeout, retry=retry
            )
        )

    def submit_job(
        self,
        function: str,
        data: Any = b"",
        *,
        unique: Payload | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
        on_status: Callable[[int, int], Any] | None = None,
        on_data: Callable[[bytes], Any] | None = None,
        on_warning: Callable[[bytes], Any] | None = None,
        retry: Retry | None = None,
    ) -> Job:
        """Submit a foreground job; return it once accepted (as the asyncio ``submit_job``)."""
        job = self._runner.run(
            self._client.submit_job(
                function,
                data,
                unique=unique,
                priority=priority,
                timeout=timeout,
                on_status=on_status,
                on_data=on_data,
                on_warning=on_warning,
                retry=retry,
            )
        )
        return Job(job, self._runner)

    def submit_batch(self, requests: Iterable[JobRequest | tuple[str, Any]]) -> list[Job]:
        """Submit many foreground jobs at once (see :meth:`geartrain.Client.submit_batch`)."""
        jobs = self._runner.run(self._client.submit_batch(list(requests)))
        return [Job(job, self._runner) for job in jobs]

    def submit_background(
        self,
        function: str,
        data: Any = b"",
        *,
        unique: Payload | None = None,
        priority: Priority = Priority.NORMAL,
        when: _client.When | None = None,
        retry: Retry | None = None,
        keep_result: Duration | None = None,
    ) -> BackgroundJob:
        """Queue a background job; return its handle (as the asyncio ``submit_background``),
        whose ``result(timeout=...)`` fetches the kept result."""
        job = self._runner.run(
            self._client.submit_background(
                function,
                data,
                unique=unique,
                priority=priority,
                when=when,
                retry=retry,
                keep_result=keep_result,
            )
        )
        return BackgroundJob(job, self._runner)

    def submit_at(
        self,
        when: _client.When,
        function: str,
        data: Any = b"",
        *,
        unique: Payload | None = None,
        keep_result: Duration | None = None,
    ) -> BackgroundJob:
        """Queue a background job that runs at ``when`` (see :meth:`geartrain.Client.submit_at`)."""
        job = self._client.submit_at(when, function, data, unique=unique, keep_result=keep_result)
        return BackgroundJob(self._runner.run(job), self._runner)

    def submit_later(
        self,
        delay: float | timedelta,
        function: str,
        data: Any = b"",
        *,
        unique: Payload | None = None,
        keep_result: Duration | None = None,
    ) -> BackgroundJob:
        """Queue a background job that runs ``delay`` from now (see ``Client.submit_later``)."""
        job = self._client.submit_later(
            delay, function, data, unique=unique, keep_result=keep_result
        )
        return BackgroundJob(self._runner.run(job), self._runner)

    def submit_cron(
        self,
        cron: str,
        function: str,
        data: Any = b"",
        *,
        unique: Payload | None = None,
        keep_result: Duration | None = None,
    ) -> BackgroundJob:
        """Queue a background job for the next minute matching ``cron`` (see ``submit_cron``)."""
        job = self._client.submit_cron(cron, function, data, unique=unique, keep_result=keep_result)
        return BackgroundJob(self._runner.run(job), self._runner)

    def get_status(self, handle: Payload, *, server: ServerSpec | None = None) -> JobStatus:
        """Job status by handle (see :meth:`geartrain.Client.get_status`)."""
        return self._runner.run(self._client.get_status(handle, server=server))

    def get_status_unique(self, unique: Payload) -> JobStatus:
        """Job status by unique key (see :meth:`geartrain.Client.get_status_unique`)."""
        return self._runner.run(self._client.get_status_unique(unique))

    def result(
        self,
        handle: Payload,
        *,
        timeout: float | None = None,
        server: ServerSpec | None = None,
        codec: Codec | None = None,
    ) -> Any:
        """A background job's kept result (see :meth:`geartrain.Client.result`)."""
        return self._runner.run(
            self._client.result(handle, timeout=timeout, server=server, codec=codec)
        )

    def result_status(
        self, handle: Payload, *, timeout: float | None = 0, server: ServerSpec | None = None
    ) -> JobResult | None:
        """What the server says of a kept result (see ``Client.result_status``)."""
        return self._runner.run(self._client.result_status(handle, timeout=timeout, server=server))

    def echo(self, data: Payload = b"ping", *, server: ServerSpec | None = None) -> bytes:
        """ECHO_REQ round trip (see :meth:`geartrain.Client.echo`)."""
        return self._runner.run(self._client.echo(data, server=server))


class Worker:
    """Blocking :class:`geartrain.Worker` (same arguments and methods).

    ``run()`` blocks until the worker stops; SIGTERM and SIGINT stop it
    gracefully when it runs in the main thread.  Or ``start()`` it and keep
    going: it then works in the background until ``stop()``.
    """

    def __init__(self, servers: ServerSpec | Iterable[ServerSpec] | None = None, **kwargs: Any):
        self._runner = _loop()
        self._worker = self._runner.run(_make(lambda: _worker.Worker(servers, **kwargs)))
        self._signals = 0

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self.wait()

    @property
    def jobs_done(self) -> int:
        return self._worker.jobs_done

    @property
    def functions(self) -> list[str]:
        return self._worker.functions

    @property
    def connected(self) -> list[Address]:
        return self._worker.connected

    @overload
    def register(self, name: F, /) -> F: ...

    @overload
    def register(
        self,
        name: str,
        func: F,
        *,
        timeout: float | None = None,
        codec: Codec | None = None,
        retry: Retry | None = None,
    ) -> F: ...

    @overload
    def register(
        self,
        name: str | None = None,
        func: None = None,
        *,
        timeout: float | None = None,
        codec: Codec | None = None,
        retry: Retry | None = None,
    ) -> Callable[[F], F]: ...

    def register(
        self,
        name: str | F | None = None,
        func: F | None = None,
        *,
        timeout: float | None = None,
        codec: Codec | None = None,
        retry: Retry | None = None,
    ) -> F | Callable[[F], F]:
        """Register a function (see :meth:`geartrain.Worker.register`)."""

        def register(name: str, func: JobFunction) -> object:
            worker = self._worker
            return self._runner.run(
                _make(
                    lambda: worker.register(name, func, timeout=timeout, codec=codec, retry=retry)
                )
            )

        return registration(register, name, func)

    def unregister(self, name: str) -> None:
        """Stop taking jobs of ``name``."""
        self._runner.run(_make(lambda: self._worker.unregister(name)))

    def start(self) -> None:
        """Start working in the background."""
        self._runner.run(self._worker.start())

    def stop(self, graceful: bool = True) -> None:
        """Stop taking jobs; gracefully (finish the jobs in hand) or at once."""
        self._runner.call(self._worker.stop, graceful)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the worker has stopped."""
        self._runner.run(self._worker.wait(), timeout)

    def run(self, *, handle_signals: bool = True) -> None:
        """Work until stopped (by :meth:`stop` from another thread, or a signal)."""
        previous: dict[int, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        self._signals = 0
        try:
            self._runner.run(self._worker.run(handle_signals=False))
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        self.stop(graceful=self._signals == 1)


class Admin:
    """Blocking :class:`geartrain.Admin` (same arguments and methods)."""

    def __init__(
        self, server: ServerSpec | Iterable[ServerSpec] = "localhost:4730", **kwargs: Any
    ) -> None:
        self._runner = _loop()
        self._admin = self._runner.run(_make(lambda: _admin.Admin(server, **kwargs)))

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def server(self) -> Address:
        return self._admin.server

    def close(self) -> None:
        self._runner.run(self._admin.close())

    def command(self, line: str | bytes, *, listing: bool | None = None) -> bytes:
        """Send one admin line; return the raw answer."""
        return self._runner.run(self._admin.command(line, listing=listing))

    def status(self) -> list[FunctionStatus]:
        return self._runner.run(self._admin.status())

    def priority_status(self) -> list[PriorityStatus]:
        return self._runner.run(self._admin.priority_status())

    def workers(self) -> list[WorkerInfo]:
        return self._runner.run(self._admin.workers())

    def show_jobs(self) -> list[JobInfo]:
        return self._runner.run(self._admin.show_jobs())

    def show_unique_jobs(self) -> list[str]:
        return self._runner.run(self._admin.show_unique_jobs())

    def version(self) -> str:
        return self._runner.run(self._admin.version())

    def verbose(self) -> str:
        return self._runner.run(self._admin.verbose())

    def getpid(self) -> int:
        return self._runner.run(self._admin.getpid())

    def ping(self) -> float:
        return self._runner.run(self._admin.ping())

    def maxqueue(self, function: str, size: int | tuple[int, int, int] | None = None) -> None:
        self._runner.run(self._admin.maxqueue(function, size))

    def cancel_job(self, handle: Payload) -> bool:
        return self._runner.run(self._admin.cancel_job(handle))

    def create_function(self, name: str) -> None:
        self._runner.run(self._admin.create_function(name))

    def drop_function(self, name: str) -> None:
        self._runner.run(self._admin.drop_function(name))

    def shutdown(self, graceful: bool = False) -> None:
        self._runner.run(self._admin.shutdown(graceful))

    # -- the failed-job set (geartrain's own commands) ---------------------------------

    def show_failed_jobs(self, function: str | None = None) -> list[FailedJobInfo]:
        return self._runner.run(self._admin.show_failed_jobs(function))

    def retry_failed(self, handle: Payload) -> bool:
        return self._runner.run(self._admin.retry_failed(handle))

    def delete_failed(self, handle: Payload) -> bool:
        return self._runner.run(self._admin.delete_failed(handle))

    def retry_failed_all(self, function: str | None = None) -> int:
        return self._runner.run(self._admin.retry_failed_all(function))

    def delete_failed_all(self, function: str | None = None) -> int:
        return self._runner.run(self._admin.delete_failed_all(function))

    def pause(self, function: str) -> None:
        self._runner.run(self._admin.pause(function))

    def resume(self, function: str) -> None:
        self._runner.run(self._admin.resume(function))

    def paused(self) -> list[str]:
        return self._runner.run(self._admin.paused())

    def result(self, handle: Payload, wait: float = 0) -> JobResult | None:
        """A background job's kept result (see :meth:`geartrain.Admin.result`)."""
        return self._runner.run(self._admin.result(handle, wait))
