"""The asyncio worker: take jobs from every server and run registered functions.

The worker keeps one connection per server and runs the GRAB / PRE_SLEEP /
NOOP cycle on each.  ``concurrency`` slots are shared by all of them: a
connection takes a slot before it asks for a job, so the worker never holds
more than ``concurrency`` jobs.  A lost connection is reopened with
exponential backoff and jitter; jobs in hand on it keep running, but their
results go nowhere (the server has handed the job to someone else).

Functions may be ``async def`` (run on the event loop) or plain (run in a
thread pool so they never block it).  A function's return value is the job's
result; an exception it raises is sent as WORK_EXCEPTION.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import signal
import ssl as _ssl
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias, TypeVar, overload

from . import tracing
from .codecs import Codec, Payload, to_bytes
from .connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_IO_TIMEOUT,
    Address,
    Backoff,
    Connection,
    ServerSpec,
    parse_servers,
)
from .errors import ConnectionLost
from .protocol import Packet, PacketType
from .retry import OPTION, Retry, option
from .worker_job import WorkerJob, describe_exception

__all__ = ["JobFunction", "Worker", "WorkerJob"]

log = logging.getLogger("geartrain.worker")

T = PacketType

JobFunction: TypeAlias = Callable[[WorkerJob], Any]
"""``func(job)`` returning the result (bytes, str or None), or a coroutine function."""

F = TypeVar("F", bound=JobFunction)

# ERROR codes that answer a WORK_* packet (a late or unknown result), never a grab.
_RESULT_ERRORS = frozenset({b"JOB_NOT_FOUND", b"ARGUMENT_TOO_LARGE"})

_ASSIGN = frozenset({T.JOB_ASSIGN, T.JOB_ASSIGN_UNIQ, T.JOB_ASSIGN_ALL})

# The server's CAN_DO_TIMEOUT is set this much later than the worker's own
# deadline: the worker fails an overrunning job itself (so the outcome is the
# same on every server), and the server's timer only catches a worker that
# hangs.  gearmand 1.1 requeues on its timer instead of failing.
_SERVER_TIMEOUT_MARGIN_MS = 1000


@dataclass
class _Function:
    name: str
    func: JobFunction
    timeout: float | None
    is_async: bool
    codec: Codec | None = None
    retry: Retry | None = None

    def can_do(self) -> tuple[PacketType, tuple[bytes, ...]]:
        name = self.name.encode()
        if self.timeout is None:
            return T.CAN_DO, (name,)
        ms = math.ceil(self.timeout * 1000) + _SERVER_TIMEOUT_MARGIN_MS
        return T.CAN_DO_TIMEOUT, (name, str(ms).encode())


class _Session:
    """One server connection and its grab loop."""

    def __init__(self, worker: Worker, conn: Connection) -> None:
        self.worker = worker
        self.conn = conn
        self.wake = asyncio.Event()
        self.jobs: set[asyncio.Task[None]] = set()
        self.grab = T.GRAB_JOB_ALL if worker.grab_all else T.GRAB_JOB_UNIQ
        # The retries extension: whether the server speaks it, and the attempt
        # (number, of how many) it announced for the job whose assignment follows.
        self.retries: bool | None = None  # None: not asked yet
        self.attempts: dict[bytes, tuple[int, int]] = {}

    def on_packet(self, packet: Packet) -> None:
        if packet.type is T.NOOP:
            self.wake.set()
        elif packet.type is T.JOB_ATTEMPT and len(packet.args) == 3:
            handle, attempt, attempts = packet.args
            if attempt.isdigit() and attempts.isdigit():
                self.attempts[handle] = (int(attempt), int(attempts))
        elif packet.type is T.ERROR:
            # A result for a job the server no longer gives us (it timed out,
            # or was cancelled): nothing to do about it.
            log.debug("%s: %r", self.conn.address, packet.args)
        else:
            log.debug("%s: unexpected %s", self.conn.address, packet.type.name)

    def on_close(self, conn: Connection) -> None:
        self.wake.set()
        self.worker._notify()

    def register(self, fn: _Function) -> None:
        packet_type, args = fn.can_do()
        self.conn.send(packet_type, *args)
        if fn.retry is None or self.retries is None:
            return  # run() registers every function again once the server has answered
        if not self.retries:
            log.warning(
                "%s does not take retry policies from workers: jobs of %r run without theirs",
                self.conn.address,
                fn.name,
            )
            return
        # Sent right behind CAN_DO: the server has it before it can hand out a job.
        reply = self.conn.ask(T.OPTION_REQ, option(fn.retry, fn.name.encode()))
        reply.add_done_callback(lambda done: self._declared(fn.name, done))

    def _declared(self, name: str, reply: asyncio.Future[Packet]) -> None:
        if not reply.cancelled() and reply.exception() is None and reply.result().type is T.ERROR:
            log.warning(
                "%s refused the retry policy of %r: %r",
                self.conn.address,
                name,
                reply.result().args,
            )

    async def run(self) -> None:
        worker = self.worker
        conn = self.conn
        if worker.client_id:
            conn.send(T.SET_CLIENT_ID, worker.client_id)
        # Ask for the retries extension (attempt numbers; policies declared here);
        # gearmand answers ERROR UNKNOWN_OPTION and the worker goes on without it.
        self.retries = (await conn.request(T.OPTION_REQ, OPTION)).type is T.OPTION_RES
        for fn in list(worker._functions.values()):
            self.register(fn)
        try:
            await self._grab_loop()
        finally:
            if worker._stopping and not conn.closed and self.jobs:
                # Graceful stop: the results of jobs in hand still go out.
                await asyncio.gather(*self.jobs, return_exceptions=True)
            conn.close()
            await conn.wait_closed()

    async def _grab_loop(self) -> None:
        worker = self.worker
        conn = self.conn
        while await worker._take_slot(self):
            try:
                reply = await conn.request(self.grab)
            except BaseException:
                worker._return_slot(assigned=False)
                raise
            if reply.type in _ASSIGN:
                worker._return_slot(assigned=True)
                worker._start_job(self, reply)
                continue
            worker._return_slot(assigned=False)
            if reply.type is T.ERROR and self.grab is T.GRAB_JOB_ALL:
                log.info("%s refused GRAB_JOB_ALL; using GRAB_JOB_UNIQ", conn.address)
                self.grab = T.GRAB_JOB_UNIQ
                continue
            if reply.type is T.ERROR:
                log.warning("%s answered a grab with ERROR %r", conn.address, reply.args)
            # NO_JOB: sleep until the server NOOPs us.  A NOOP that arrived
            # before this point is stale; PRE_SLEEP gets a fresh one at once
            # if a job is waiting.
            self.wake.clear()
            if worker._stopping or conn.closed:
                # stop() or a lost connection set the event before the clear.
                continue
            conn.send(T.PRE_SLEEP)
            try:
                # Waking up anyway now and then finds a dead server (the grab
                # must be answered within io_timeout) and picks up epoch jobs
                # that gearmand 1.1 forgets to announce when they fall due.
                async with asyncio.timeout(worker.idle_timeout):
                    await self.wake.wait()
            except TimeoutError:
                pass


class Worker:
    """An asyncio Gearman worker for one or more job servers.

    Example::

        worker = Worker(["127.0.0.1:4730"], concurrency=4)

        @worker.register("reverse")
        async def reverse(job: WorkerJob) -> bytes:
            return job.data[::-1]

        await worker.run()   # until SIGTERM / SIGINT

    Args:
        servers: as for :class:`~geartrain.Client`; the worker connects to all.
        concurrency: the most jobs in hand at once, across all servers.
        client_id: sent with SET_CLIENT_ID; shown by the admin ``workers`` command.
        grab_all: ask with GRAB_JOB_ALL (falls back to GRAB_JOB_UNIQ on a
            server that refuses it).
        idle_timeout: an idle connection asks for work at least this often.
        max_jobs: stop (gracefully) after this many jobs.
        grace_period: seconds a graceful stop (the first SIGTERM or SIGINT,
            :meth:`stop`) waits for the jobs in hand; then they are released
            back to the server, which hands them to another worker.  None
            waits for ever.
        connect_timeout, io_timeout, max_backoff, ssl: as for the client.
        executor: runs plain (non-async) functions; by default a thread pool
            of ``concurrency`` threads.
    """

    def __init__(
        self,
        servers: ServerSpec | Iterable[ServerSpec] | None = None,
        *,
        concurrency: int = 1,
        client_id: Payload | None = None,
        grab_all: bool = True,
        idle_timeout: float = 30.0,
        max_jobs: int | None = None,
        grace_period: float | None = 30.0,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        io_timeout: float | None = DEFAULT_IO_TIMEOUT,
        max_backoff: float = 30.0,
        ssl: _ssl.SSLContext | None = None,
        executor: Executor | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.servers = parse_servers(servers)
        self.concurrency = concurrency
        self.client_id = to_bytes(client_id) if client_id else b""
        self.grab_all = grab_all
        self.idle_timeout = idle_timeout
        self.max_jobs = max_jobs
        self.grace_period = grace_period
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout
        self.max_backoff = max_backoff
        self.ssl = ssl
        self.jobs_done = 0
        """Jobs finished (in any way) since the worker started."""
        self._executor = executor
        self._own_executor = False
        self._functions: dict[str, _Function] = {}
        self._sessions: dict[Address, _Session] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._jobs: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._signals = 0
        self._free = concurrency
        self._reserved = 0
        self._assigned = 0
        self._changed: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._grace_timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()
        await self.wait()

    # -- functions -------------------------------------------------------------

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
        """Register ``func`` for jobs of function ``name``; usable as a decorator.

        ``name`` defaults to the function's own name, so ``@worker.register``,
        ``@worker.register()`` and ``@worker.register(timeout=5)`` register
        ``def resize(job)`` as ``resize``.

        ``timeout`` (seconds) bounds each job: past it the job fails
        (WORK_FAIL), an async function is cancelled and a plain one's result
        is discarded.  The server is told with CAN_DO_TIMEOUT.

        ``codec`` decodes :attr:`WorkerJob.value` and encodes results that are
        not bytes or str (JSON when not given).  With OpenTelemetry installed
        each job runs in a CONSUMER span ``gearman.run <name>``.

        ``retry`` (a :class:`~geartrain.Retry`) asks the server to run a failed
        job again, ``Retry(attempts=3)`` up to three attempts in all, through
        geartrain's retries extension: the server's settings file still wins
        where it names the function, and a submission's own policy wins over
        both (docs/failures.md).  A server without the extension (gearmand)
        ignores it, with a warning in the log.  :attr:`WorkerJob.attempt` tells
        the function which attempt it runs.

        Raises:
            TypeError: ``func`` is not callable.
            ValueError: ``name`` is empty, or not given for a lambda; or
                ``timeout`` is not positive.
        """
        return registration(
            lambda name, func: self._register(name, func, timeout, codec, retry), name, func
        )

    def _register(
        self,
        name: str,
        func: JobFunction,
        timeout: float | None,
        codec: Codec | None,
        retry: Retry | None = None,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"retry must be a geartrain.Retry, not {type(retry).__name__}")
        fn = _Function(name, func, timeout, inspect.iscoroutinefunction(func), codec, retry)
        self._functions[name] = fn
        for session in self._sessions.values():
            _quietly(session.register, fn)

    def unregister(self, name: str) -> None:
        """Stop taking jobs of function ``name`` (CANT_DO)."""
        if self._functions.pop(name, None) is None:
            return
        for session in self._sessions.values():
            _quietly(session.conn.send, T.CANT_DO, name.encode())

    @property
    def functions(self) -> list[str]:
        """The registered function names."""
        return list(self._functions)

    # -- running -------------------------------------------------------------------

    async def run(self, *, handle_signals: bool = True) -> None:
        """Work until stopped.

        With ``handle_signals`` (and in the main thread), SIGTERM and SIGINT
        stop the worker gracefully: it finishes the jobs in hand (for up to
        ``grace_period`` seconds) and takes no more.  A second signal stops it
        at once.  Jobs not finished are released back to the server.
        """
        await self.start()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        try:
            await self.wait()
        except asyncio.CancelledError:
            self.stop(graceful=False)
            await asyncio.shield(self.wait())
            raise
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def start(self) -> None:
        """Connect to the servers and start taking jobs in the background."""
        if self._tasks:
            raise RuntimeError("worker already started")
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._signals = 0
        self._free = self.concurrency
        self._reserved = self._assigned = 0
        self.jobs_done = 0
        self._changed = asyncio.Event()
        self._stop_event = asyncio.Event()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self.concurrency, thread_name_prefix="geartrain-worker"
            )
            self._own_executor = True
        self._tasks = [loop.create_task(self._serve(address)) for address in self.servers]

    def stop(self, graceful: bool = True) -> None:
        """Stop taking jobs; gracefully (finish the jobs in hand) or at once.

        A graceful stop waits ``grace_period`` seconds at most; then, as with
        ``graceful=False``, async jobs are cancelled, plain ones' results are
        dropped and the connections close, so the server gives the jobs in
        hand to another worker.
        """
        if graceful and self._jobs and self.grace_period is not None and not self._grace_timer:
            loop = next(iter(self._jobs)).get_loop()  # stop() may be called from outside it
            self._grace_timer = loop.call_later(self.grace_period, self._grace_over)
        elif not graceful and self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        for session in list(self._sessions.values()):
            session.wake.set()
        if not graceful:
            for task in list(self._jobs):
                task.cancel()
            for session in list(self._sessions.values()):
                session.conn.close()
        self._notify()

    async def wait(self) -> None:
        """Wait until the worker has stopped and its connections are closed."""
        # Shielded: a caller that gives up waiting must not cancel the worker.
        tasks = self._tasks
        if tasks:
            await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))
        if self._jobs:
            await asyncio.shield(asyncio.gather(*self._jobs, return_exceptions=True))
        if tasks is self._tasks:
            self._tasks = []
            if self._grace_timer is not None:
                self._grace_timer.cancel()
                self._grace_timer = None
            if self._own_executor and self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None
                self._own_executor = False

    @property
    def running(self) -> bool:
        """True between :meth:`start` and the end of :meth:`wait`."""
        return bool(self._tasks)

    @property
    def connected(self) -> list[Address]:
        """The servers the worker is connected to now."""
        return [addr for addr, s in self._sessions.items() if not s.conn.closed]

    def connection_failed(self, address: Address, error: Exception) -> None:
        """Called when connecting to a server fails; override to report it."""
        log.warning("%s", error)

    def _grace_over(self) -> None:
        self._grace_timer = None
        if self._jobs:
            log.warning(
                "grace period of %ss over: releasing %d job(s) in hand",
                self.grace_period,
                len(self._jobs),
            )
            self.stop(graceful=False)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            log.warning("%s: finishing %d job(s) in hand, then stopping", sig.name, len(self._jobs))
            self.stop(graceful=True)
        else:
            log.warning("%s again: stopping now", sig.name)
            self.stop(graceful=False)

    # -- connections -------------------------------------------------------------------

    async def _serve(self, address: Address) -> None:
        backoff = Backoff(0.1, self.max_backoff)
        while not self._stopping:
            session: _Session | None = None
            try:
                conn = await Connection.open(
                    address,
                    connect_timeout=self.connect_timeout,
                    ssl=self.ssl,
                    io_timeout=self.io_timeout,
                    unsolicited_errors=_RESULT_ERRORS,
                )
            except ConnectionLost as exc:
                self.connection_failed(address, exc)
                await self._pause(backoff.next())
                continue
            session = _Session(self, conn)
            conn.on_packet = session.on_packet
            conn.on_close = session.on_close
            self._sessions[address] = session
            backoff.reset()
            log.info("connected to %s", address)
            try:
                await session.run()
            except ConnectionLost as exc:
                if not self._stopping:
                    log.warning("%s", exc)
            finally:
                if self._sessions.get(address) is session:
                    del self._sessions[address]
            if not self._stopping:
                await self._pause(backoff.next())

    async def _pause(self, delay: float) -> None:
        assert self._stop_event is not None
        try:
            async with asyncio.timeout(delay):
                await self._stop_event.wait()
        except TimeoutError:
            pass

    # -- slots ---------------------------------------------------------------------------

    def _notify(self) -> None:
        if self._changed is not None:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def _take_slot(self, session: _Session) -> bool:
        """Reserve a slot for one grab; False when the session should stop grabbing."""
        while True:
            if self._stopping or session.conn.closed:
                return False
            quota = self.max_jobs is None or self._assigned + self._reserved < self.max_jobs
            if self._free > 0 and quota:
                self._free -= 1
                self._reserved += 1
                return True
            assert self._changed is not None
            await self._changed.wait()

    def _return_slot(self, *, assigned: bool) -> None:
        self._reserved -= 1
        if assigned:
            self._assigned += 1
        else:
            self._free += 1
            self._notify()

    def _job_done(self) -> None:
        self._free += 1
        self.jobs_done += 1
        self._notify()
        if self.max_jobs is not None and self.jobs_done >= self.max_jobs:
            self.stop(graceful=True)

    # -- jobs ------------------------------------------------------------------------------------

    def _start_job(self, session: _Session, reply: Packet) -> None:
        args = reply.args
        if reply.type is T.JOB_ASSIGN:
            handle, function, data = (args + (b"", b"", b""))[:3]
            unique = reducer = b""
        elif reply.type is T.JOB_ASSIGN_UNIQ:
            handle, function, unique, data = (args + (b"",) * 4)[:4]
            reducer = b""
        else:
            handle, function, unique, reducer, data = (args + (b"",) * 5)[:5]
        attempt, attempts = session.attempts.pop(handle, (None, None))
        job = WorkerJob(
            session.conn, handle, function.decode(errors="replace"), unique, data, reducer
        )
        job.attempt, job.attempts = attempt, attempts
        task = asyncio.get_running_loop().create_task(self._run_job(job))
        self._jobs.add(task)
        session.jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        task.add_done_callback(session.jobs.discard)

    async def _run_job(self, job: WorkerJob) -> None:
        started, start = time.time(), time.monotonic()
        try:
            fn = self._functions.get(job.function)
            if fn is None:
                log.warning("got a job for unregistered function %r; failing it", job.function)
                job.fail()
                return
            job._codec = fn.codec
            with tracing.span("gearman.run", "CONSUMER", fn.name) as span:
                tracing.set_handle(span, job.handle)
                await self._execute(fn, job)
        finally:
            log.info(
                "job %s (%s) %s in %.3fs, started %s%s",
                job._name,
                job.function,
                job._outcome or "released unfinished",
                time.monotonic() - start,
                datetime.fromtimestamp(started).strftime("%H:%M:%S.%f")[:-3],
                # Only where a policy retries: the line stays as it was otherwise.
                f", attempt {job.attempt} of {job.attempts}" if (job.attempts or 0) > 1 else "",
            )
            self._job_done()

    async def _execute(self, fn: _Function, job: WorkerJob) -> None:
        try:
            async with asyncio.timeout(fn.timeout) as deadline:
                result = await self._call(fn, job)
        except TimeoutError as exc:
            if not deadline.expired():  # the function's own timeout, not ours
                _report_exception(job, exc)
                return
            reason = f"TimeoutError: job {fn.name!r} ran past its {fn.timeout}s timeout"
            log.warning("job %s: %s", job._name, reason)
            job.exception(reason)  # a client without the exceptions option gets WORK_FAIL
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _report_exception(job, exc)
            return
        try:
            job.complete(result)
        except TypeError as exc:
            _report_exception(job, exc)

    async def _call(self, fn: _Function, job: WorkerJob) -> Any:
        if fn.is_async:
            return await fn.func(job)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, fn.func, job)
        if inspect.isawaitable(result):  # a plain callable that returned a coroutine
            return await result
        return result


def registration(
    register: Callable[[str, JobFunction], object], name: str | F | None, func: F | None
) -> F | Callable[[F], F]:
    """``register(name, func)`` now, or the decorator that will: the rule of
    :meth:`Worker.register`'s arguments, for the sync facade too."""
    if callable(name):  # a bare @worker.register
        if func is not None:
            raise TypeError("register(name, func): the name comes first")
        name, func = None, name

    def apply(f: F) -> F:
        if not callable(f):
            raise TypeError(f"{name!r}: job function must be callable, not {type(f).__name__}")
        register(_function_name(name, f), f)
        return f

    if name == "":
        raise ValueError("function name must not be empty")
    return apply if func is None else apply(func)


def _function_name(name: str | None, func: JobFunction) -> str:
    if name is not None:
        return name
    own = getattr(func, "__name__", "")
    if not own or own == "<lambda>":
        raise ValueError(f"{func!r} has no name of its own: give one, register(name, func)")
    return str(own)


def _report_exception(job: WorkerJob, exc: BaseException) -> None:
    """Send a function's exception to the server as WORK_EXCEPTION."""
    log.warning(
        "job %s (%s) raised %s", job._name, job.function, describe_exception(exc), exc_info=exc
    )
    job.exception(describe_exception(exc))


def _quietly(func: Callable[..., Any], *args: Any) -> None:
    with contextlib.suppress(ConnectionLost):
        func(*args)
