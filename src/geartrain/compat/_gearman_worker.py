"""python-gearman 2.0.2's ``GearmanWorker`` and ``GearmanAdminClient`` on :mod:`geartrain.sync`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import sys
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, ClassVar

from .. import sync
from ..codecs import to_bytes
from ..connection import ServerSpec
from ..errors import ConnectionLost
from ..worker_job import WorkerJob
from ._gearman_base import (
    DataEncoder,
    GearmanJob,
    InvalidAdminClientState,
    InvalidWorkerState,
    NoopEncoder,
    ServerUnavailable,
    _host_list,
    log,
)

__all__ = ["GearmanAdminClient", "GearmanWorker"]


class GearmanWorker:
    """Take jobs from every server and run callbacks (python-gearman 2.0.2's ``GearmanWorker``).

    Callbacks run in the thread that called :meth:`work`, one at a time:
    ``callback(worker, job)`` returns the result; an exception fails the job.
    """

    data_encoder: ClassVar[type[DataEncoder]] = NoopEncoder
    job_class: ClassVar[type[GearmanJob]] = GearmanJob

    def __init__(self, host_list: Sequence[ServerSpec] | None = None) -> None:
        self.connection_list = _host_list(host_list)
        self.worker_abilities: dict[str, Callable[[GearmanWorker, GearmanJob], Any]] = {}
        self.worker_client_id: str | None = None
        self._inbox: queue.Queue[tuple[WorkerJob, concurrent.futures.Future[None]]] = queue.Queue()
        self._worker: sync.Worker | None = None
        self._running: dict[int, WorkerJob] = {}

    def _sync(self) -> sync.Worker:
        if not self.connection_list:
            raise ServerUnavailable(f"Found no valid connections in list: {self.connection_list!r}")
        if self._worker is None:
            self._worker = sync.Worker(self.connection_list, client_id=self.worker_client_id)
            for task in self.worker_abilities:
                self._worker.register(task, self._hand_over)
        return self._worker

    async def _hand_over(self, job: WorkerJob) -> None:
        # Runs on geartrain's loop: pass the job to the work() thread and
        # wait there until that thread has run the callback.
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._inbox.put((job, done))
        await asyncio.wrap_future(done)

    # -- configuration ----------------------------------------------------------------

    def register_task(
        self, task: str, callback_function: Callable[[GearmanWorker, GearmanJob], Any]
    ) -> str:
        """Register ``callback_function(worker, job)`` for ``task``."""
        self.worker_abilities[task] = callback_function
        if self._worker is not None:
            self._worker.register(task, self._hand_over)
        return task

    def unregister_task(self, task: str) -> str:
        self.worker_abilities.pop(task, None)
        if self._worker is not None:
            self._worker.unregister(task)
        return task

    def set_client_id(self, client_id: str) -> str:
        """Set the client id shown by the admin ``workers`` command (before ``work()``)."""
        self.worker_client_id = client_id
        return client_id

    # -- the work loop -------------------------------------------------------------------

    def work(self, poll_timeout: float | None = 60.0) -> None:
        """Work until :meth:`after_poll` returns False."""
        worker = self._sync()
        worker.start()
        try:
            continue_working = True
            while continue_working:
                try:
                    job, done = self._inbox.get(timeout=poll_timeout)
                except queue.Empty:
                    activity = False
                else:
                    self._run(job, done)
                    activity = True
                continue_working = self.after_poll(activity)
        finally:
            worker.stop()
            while True:
                self._drain()
                try:
                    worker.wait(timeout=0.05)
                    break
                except TimeoutError:
                    continue

    def _drain(self) -> None:
        # A job grabbed while we were stopping: give it back as failed.
        while True:
            try:
                job, done = self._inbox.get_nowait()
            except queue.Empty:
                return
            job.fail()
            _resolve(done)

    def _run(self, wjob: WorkerJob, done: concurrent.futures.Future[None]) -> None:
        current_job = self.create_job(wjob)
        self._running[id(current_job)] = wjob
        try:
            self.on_job_execute(current_job)
        finally:
            del self._running[id(current_job)]
            if not wjob.finished:
                log.warning("job %s ended without a result; failing it", current_job.handle)
                wjob.fail()
            _resolve(done)

    def create_job(self, wjob: WorkerJob) -> GearmanJob:
        return self.job_class(
            wjob,
            wjob.handle,
            wjob.function,
            wjob.unique.decode(errors="surrogateescape"),
            self.data_encoder.decode(wjob.data),
        )

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    # -- hooks ------------------------------------------------------------------------------

    def after_poll(self, any_activity: bool) -> bool:
        """Called after each job or ``poll_timeout``; return False to leave :meth:`work`."""
        return True

    def on_job_execute(self, current_job: GearmanJob) -> bool:
        try:
            callback = self.worker_abilities[current_job.task]
            job_result = callback(self, current_job)
        except Exception:
            return self.on_job_exception(current_job, sys.exc_info())
        return self.on_job_complete(current_job, job_result)

    def on_job_exception(
        self,
        current_job: GearmanJob,
        exc_info: tuple[type[BaseException] | None, BaseException | None, TracebackType | None],
    ) -> bool:
        # python-gearman fails the job silently; a traceback in the log is
        # what tells a ported Python 2 callback (str + bytes) from a bad job.
        log.error(
            "job %s (%s) raised; failing it",
            current_job.handle,
            current_job.task,
            exc_info=exc_info[1],
        )
        self.send_job_failure(current_job)
        return False

    def on_job_complete(self, current_job: GearmanJob, job_result: Any) -> bool:
        self.send_job_complete(current_job, job_result)
        return True

    # -- sending updates ------------------------------------------------------------------

    def _wjob(self, current_job: GearmanJob) -> WorkerJob:
        wjob = self._running.get(id(current_job))
        if wjob is None:
            if isinstance(current_job.connection, WorkerJob):
                return current_job.connection
            raise InvalidWorkerState(f"not a job of this worker: {current_job!r}")
        return wjob

    def _encode(self, data: Any) -> bytes:
        return to_bytes(self.data_encoder.encode(data))

    def send_job_status(
        self,
        current_job: GearmanJob,
        numerator: float,
        denominator: float,
        poll_timeout: float | None = None,
    ) -> None:
        self._wjob(current_job).send_status(int(numerator), int(denominator))

    def send_job_complete(
        self, current_job: GearmanJob, data: Any, poll_timeout: float | None = None
    ) -> None:
        wjob = self._wjob(current_job)
        if not wjob.finished:  # a callback that already sent an exception or failure
            wjob.complete(self._encode(data))

    def send_job_failure(self, current_job: GearmanJob, poll_timeout: float | None = None) -> None:
        self._wjob(current_job).fail()

    def send_job_exception(
        self, current_job: GearmanJob, data: Any, poll_timeout: float | None = None
    ) -> None:
        self._wjob(current_job).exception(self._encode(data))

    def send_job_data(
        self, current_job: GearmanJob, data: Any, poll_timeout: float | None = None
    ) -> None:
        self._wjob(current_job).send_data(self._encode(data))

    def send_job_warning(
        self, current_job: GearmanJob, data: Any, poll_timeout: float | None = None
    ) -> None:
        self._wjob(current_job).send_warning(self._encode(data))


def _resolve(done: concurrent.futures.Future[None]) -> None:
    # The waiting side may have been cancelled by a hard stop.
    if not done.done():
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            done.set_result(None)


ECHO_STRING = "ping? pong!"
DEFAULT_ADMIN_CLIENT_TIMEOUT = 10.0


class GearmanAdminClient:
    """Admin commands to exactly one server (python-gearman 2.0.2's ``GearmanAdminClient``)."""

    def __init__(
        self,
        host_list: Sequence[ServerSpec] | None = None,
        poll_timeout: float = DEFAULT_ADMIN_CLIENT_TIMEOUT,
    ) -> None:
        self.connection_list = _host_list(host_list)
        self.poll_timeout = poll_timeout
        self.current_connection = self.connection_list[0] if self.connection_list else None
        self._admin: sync.Admin | None = None

    def _sync(self) -> sync.Admin:
        if self.current_connection is None:
            raise ServerUnavailable(f"Found no valid connections in list: {self.connection_list!r}")
        if self._admin is None:
            self._admin = sync.Admin(self.current_connection, io_timeout=self.poll_timeout)
        return self._admin

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except ConnectionLost as exc:
            if "no answer" in str(exc):
                raise InvalidAdminClientState(
                    f"Admin client timed out after {self.poll_timeout:f} second(s)"
                ) from exc
            raise ServerUnavailable(str(exc)) from exc

    def ping_server(self) -> float:
        """Round-trip an ECHO_REQ; return the seconds it took."""
        return float(self._call(self._sync().ping))

    def send_maxqueue(self, task: str, max_size: int) -> str:
        self._call(self._sync().maxqueue, task, max_size)
        return "OK"

    def send_shutdown(self, graceful: bool = True) -> None:
        self._call(self._sync().shutdown, graceful)

    def get_status(self) -> tuple[dict[str, Any], ...]:
        """``({'task', 'queued', 'running', 'workers'}, ...)``; queued counts running jobs too."""
        return tuple(
            {"task": s.function, "queued": s.total, "running": s.running, "workers": s.workers}
            for s in self._call(self._sync().status)
        )

    def get_version(self) -> str:
        """The raw version line, e.g. ``'OK 1.1.20+ds'``."""
        answer: bytes = self._call(self._sync().command, "version")
        return answer.rstrip(b"\r\n").decode(errors="replace")

    def get_workers(self) -> tuple[dict[str, Any], ...]:
        """``({'file_descriptor', 'ip', 'client_id', 'tasks'}, ...)``."""
        return tuple(
            {
                "file_descriptor": str(w.fd),
                "ip": w.ip,
                "client_id": w.client_id if w.client_id is not None else "-",
                "tasks": w.functions,
            }
            for w in self._call(self._sync().workers)
        )

    # Later python-gearman additions, handy and harmless.

    def get_pid(self) -> int:
        return int(self._call(self._sync().getpid))

    def cancel_job(self, handle: bytes | str) -> bool:
        return bool(self._call(self._sync().cancel_job, handle))

    def get_jobs(self) -> tuple[dict[str, Any], ...]:
        return tuple(
            {
                "handle": j.handle,
                "queued": j.retries,
                "canceled": int(j.ignored),
                "enabled": int(j.queued),
            }
            for j in self._call(self._sync().show_jobs)
        )

    def get_unique_jobs(self) -> tuple[str, ...]:
        return tuple(self._call(self._sync().show_unique_jobs))
