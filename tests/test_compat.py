"""python-gearman 2.0.2 code, ported by changing one import, against a real server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from geartrain.compat import gearman
from serverproc import ServerProc

pytestmark = [pytest.mark.timeout(30), pytest.mark.in_process]


class StoppableWorker(gearman.GearmanWorker):
    """The usual 2.x idiom: after_poll decides whether work() goes on."""

    def __init__(self, host_list: list[str]) -> None:
        super().__init__(host_list)
        self.stopping = threading.Event()
        self.threads: set[str] = set()

    def after_poll(self, any_activity: bool) -> bool:
        return not self.stopping.is_set()


def reverse(worker: gearman.GearmanWorker, job: gearman.GearmanJob) -> bytes:
    worker.threads.add(threading.current_thread().name)  # type: ignore[attr-defined]
    return job.data[::-1]


def chatty(worker: gearman.GearmanWorker, job: gearman.GearmanJob) -> str:
    worker.send_job_status(job, 1, 2)
    worker.send_job_data(job, "partial")
    worker.send_job_warning(job, b"hmm")
    return "done"


def broken(worker: gearman.GearmanWorker, job: gearman.GearmanJob) -> bytes:
    raise ValueError("boom")


def excepting(worker: gearman.GearmanWorker, job: gearman.GearmanJob) -> None:
    worker.send_job_exception(job, "it broke")


@contextmanager
def working(
    address: str, tasks: dict[str, Callable[..., Any]], cls: type[StoppableWorker] = StoppableWorker
) -> Iterator[StoppableWorker]:
    worker = cls([address])
    worker.set_client_id("compat-worker")
    for task, callback in tasks.items():
        assert worker.register_task(task, callback) == task
    thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 0.05}, name="work")
    thread.start()
    try:
        admin = gearman.GearmanAdminClient([address])
        while not all(
            any(s["task"] == t and s["workers"] for s in admin.get_status()) for t in tasks
        ):
            time.sleep(0.02)
        yield worker
    finally:
        worker.stopping.set()
        thread.join(10)
        assert not thread.is_alive()


def test_submit_job_waits_for_the_result(server: ServerProc) -> None:
    with working(server.address, {"reverse": reverse}) as worker:
        client = gearman.GearmanClient([server.address])
        request = client.submit_job("reverse", "hello")
        assert request.state == gearman.JOB_COMPLETE and request.complete
        assert request.result == b"olleh"
        assert not request.timed_out
        assert isinstance(request.job.handle, bytes) and request.job.task == "reverse"
        assert len(request.job.unique) == 32  # 16 random bytes, hex
        client.shutdown()
    assert worker.threads == {"work"}  # callbacks ran in the thread that called work()


def test_updates_status_and_priority(server: ServerProc) -> None:
    with working(server.address, {"chatty": chatty}):
        client = gearman.GearmanClient([server.address])
        request = client.submit_job("chatty", b"", priority=gearman.PRIORITY_HIGH)
        assert request.result == b"done"
        assert list(request.data_updates) == [b"partial"]
        assert list(request.warning_updates) == [b"hmm"]
        assert request.status["numerator"] == 1 and request.status["denominator"] == 2
        assert list(request.status_updates) == [(1, 2)]


def test_failures(server: ServerProc) -> None:
    with working(server.address, {"broken": broken, "excepting": excepting}):
        client = gearman.GearmanClient([server.address])
        request = client.submit_job("broken", b"x")
        assert request.state == gearman.JOB_FAILED and request.complete
        assert request.result is None
        request = client.submit_job("excepting", b"x")
        assert request.state == gearman.JOB_FAILED
        assert request.exception == b"it broke"


def python2_greeter(worker: gearman.GearmanWorker, job: gearman.GearmanJob) -> str:
    return "Hello, " + job.data  # type: ignore[no-any-return]  # data is bytes now


def test_callback_exceptions_are_logged_with_their_traceback(
    server: ServerProc, caplog: pytest.LogCaptureFixture
) -> None:
    with working(server.address, {"greet": python2_greeter}):
        client = gearman.GearmanClient([server.address])
        request = client.submit_job("greet", b"world")
        assert request.state == gearman.JOB_FAILED
    logged = [r for r in caplog.records if r.name == "gearman" and r.exc_info]
    assert len(logged) == 1
    assert "greet" in logged[0].getMessage()
    exc_info = logged[0].exc_info
    assert exc_info is not None and exc_info[0] is TypeError


def test_background_job_and_status(server: ServerProc) -> None:
    client = gearman.GearmanClient([server.address])
    request = client.submit_job("later", b"x", background=True, priority=gearman.PRIORITY_LOW)
    assert request.state == gearman.JOB_CREATED and request.complete
    client.get_job_status(request)
    status = request.status
    assert status["handle"] == request.job.handle
    assert status["known"] is True and status["running"] is False
    assert status["numerator"] == 0 and status["denominator"] == 0
    assert "time_received" in status and not request.timed_out


def test_multiple_jobs_without_waiting_then_wait(server: ServerProc) -> None:
    client = gearman.GearmanClient([server.address])
    jobs = [dict(task="reverse", data=f"job{i}") for i in range(4)]
    requests = client.submit_multiple_jobs(jobs, wait_until_complete=False)
    assert all(r.state == gearman.JOB_CREATED for r in requests)
    requests = client.wait_until_jobs_completed(requests, poll_timeout=0.1)
    assert all(r.timed_out and r.state == gearman.JOB_CREATED for r in requests)
    with working(server.address, {"reverse": reverse}):
        requests = client.wait_until_jobs_completed(requests, poll_timeout=10)
    assert [r.result for r in requests] == [f"job{i}".encode()[::-1] for i in range(4)]
    assert not any(r.timed_out for r in requests)


def test_poll_timeout_on_submit(server: ServerProc) -> None:
    client = gearman.GearmanClient([server.address])
    request = client.submit_job("nobody", b"x", poll_timeout=0.1)
    assert request.timed_out and request.state == gearman.JOB_CREATED and not request.complete


def test_dash_unique_uses_the_data(server: ServerProc) -> None:
    client = gearman.GearmanClient([server.address])
    a = client.submit_job("nobody", "same", unique="-", background=True)
    b = client.submit_job("nobody", "same", unique="-", background=True)
    assert a.job.unique == "same" and a.job.handle == b.job.handle


class JSONDataEncoder(gearman.DataEncoder):
    @classmethod
    def encode(cls, encodable_object: Any) -> str:
        return json.dumps(encodable_object)

    @classmethod
    def decode(cls, decodable_string: Any) -> Any:
        return json.loads(decodable_string)


class JSONClient(gearman.GearmanClient):
    data_encoder = JSONDataEncoder


class JSONWorker(StoppableWorker):
    data_encoder = JSONDataEncoder


def add(worker: gearman.GearmanWorker, job: gearman.GearmanJob) -> dict[str, int]:
    return {"sum": sum(job.data["numbers"])}


def test_data_encoder(server: ServerProc) -> None:
    with working(server.address, {"add": add}, cls=JSONWorker):
        client = JSONClient([server.address])
        request = client.submit_job("add", {"numbers": [1, 2, 3]})
        assert request.result == {"sum": 6}


def test_noop_encoder_rejects_objects(server: ServerProc) -> None:
    client = gearman.GearmanClient([server.address])
    with pytest.raises(TypeError):
        client.submit_job("x", {"not": "bytes"})


def test_admin_client(server: ServerProc) -> None:
    with working(server.address, {"reverse": reverse}):
        admin = gearman.GearmanAdminClient([server.address])
        assert 0 < admin.ping_server() < 1
        assert admin.get_version().startswith("OK ")
        assert admin.send_maxqueue("reverse", 10) == "OK"
        statuses = admin.get_status()
        assert {"task": "reverse", "queued": 0, "running": 0, "workers": 1} in statuses
        workers = admin.get_workers()
        mine = [w for w in workers if w["client_id"] == "compat-worker"]
        assert mine and mine[0]["tasks"] == ("reverse",)
        assert isinstance(mine[0]["file_descriptor"], str)
        assert admin.get_pid() == server.pid
        assert admin.get_jobs() == () and admin.get_unique_jobs() == ()
        assert admin.cancel_job("H:none:1") is False


def test_no_servers() -> None:
    with pytest.raises(gearman.ServerUnavailable):
        gearman.GearmanClient().submit_job("x", b"y")
    with pytest.raises(gearman.ServerUnavailable):
        gearman.GearmanWorker().work()
    with pytest.raises(gearman.ServerUnavailable):
        gearman.GearmanAdminClient().get_status()


def test_dead_server_raises_server_unavailable() -> None:
    from serverproc import free_port

    client = gearman.GearmanClient([f"127.0.0.1:{free_port()}"])
    with pytest.raises(gearman.ServerUnavailable):
        client.submit_job("x", b"y")
    admin = gearman.GearmanAdminClient([("127.0.0.1", free_port())])
    with pytest.raises(gearman.ServerUnavailable):
        admin.get_status()


def test_module_surface() -> None:
    assert gearman.PRIORITY_NONE is None
    assert (gearman.PRIORITY_LOW, gearman.PRIORITY_HIGH) == ("LOW", "HIGH")
    assert gearman.DEFAULT_GEARMAN_PORT == 4730
    for name in ("ConnectionError", "ProtocolError", "InvalidClientState", "UnknownCommandError"):
        assert issubclass(getattr(gearman, name), gearman.GearmanError)
    job = gearman.GearmanJob(None, "H:x:1", "task", "u", b"d")
    assert job.to_dict() == {"task": "task", "job_handle": "H:x:1", "unique": "u", "data": b"d"}
    request = gearman.GearmanJobRequest(job)
    assert request.state == gearman.JOB_UNKNOWN and not request.complete
    assert "task='task'" in repr(request)
