"""``--user``: a server started as root binds, becomes that user, then opens its
queue, with a real unprivileged user the test creates.

- The default queue lands in that user's home, its files are the user's, the
  background fsync works, and the user can start the server on it afterwards.
- A queue path the user cannot write is a one-line startup error, status 1.
- A failing background fsync is never silent: ``/readyz`` turns not ready, a metric
  counts it, past the limit background jobs are refused, and they are accepted
  again once an fsync succeeds.
"""

from __future__ import annotations

import pwd
import subprocess
import time
from pathlib import Path

import pytest

from console.conftest import Console
from geartrain.protocol import PacketType
from geartrain.server.persistence import SYNC_FAILURE_LIMIT
from machine import as_user, python_for
from serverproc import HOST, ServerProc, free_port
from store.test_durability import drain, submit
from store.test_full_disk import metric, readyz
from wire import Wire

from .test_server_cli import wait_for
from .test_startup_errors import assert_one_line_failure

T = PacketType
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def server(user: pwd.struct_passwd, *args: str, switch: bool = True) -> ServerProc:
    """A server started by root with ``--user`` (``switch``), or by the user."""
    port = free_port()
    command = ["-m", "geartrain", "server", "-L", HOST, "-p", str(port), *args]
    if switch:
        # Root's own state directory must not be where the user's queue goes.
        argv = ["env", f"XDG_STATE_HOME={root_state(user)}", *python_for(user), *command]
        argv += ["--user", user.pw_name]
    else:
        argv = ["setpriv", *as_user(user), "env", "-u", "XDG_STATE_HOME"]
        argv += [f"HOME={user.pw_dir}", *python_for(user), *command]
    return ServerProc("geartrain", argv, port)


def root_state(user: pwd.struct_passwd) -> Path:
    """The state directory of the root that starts the server (beside the user's home)."""
    return Path(user.pw_dir).parent / "root-state"


def submit_jobs(port: int, count: int) -> list[bytes]:
    """Background jobs, one at a time; returns the payloads acknowledged."""
    conn = Wire(port, timeout=10)
    try:
        return [
            data
            for data in (b"job %d" % i for i in range(count))
            if submit(conn, T.SUBMIT_JOB_BG, data).type == T.JOB_CREATED
        ]
    finally:
        conn.close()


def failed_fsyncs(console: Console) -> float:
    return metric(console, 'geartrain_store_failures_total{kind="fsync"}')


def test_user_opens_the_queue_as_that_user_in_its_home(system_user: pwd.struct_passwd) -> None:
    console_port = free_port()
    root_started = server(system_user, f"--console-port={console_port}").start()
    try:
        console = Console(root_started, console_port)
        acked = submit_jobs(root_started.port, 200)
        assert len(acked) == 200
        time.sleep(2.5)  # two beats of the background fsync
        assert readyz(console) == (200, "ready\n")
        assert failed_fsyncs(console) == 0
        assert "Queue store" not in root_started.log()  # no trouble logged
        queue = Path(system_user.pw_dir, ".local", "state", "geartrain")
        files = [queue, *queue.iterdir()]
        assert {f.name for f in files} >= {"queue.sqlite3", "queue.sqlite3.lock"}
        assert any(f.name.startswith("queue.sqlite3.pending-") for f in files)
        assert {f.stat().st_uid for f in files} == {system_user.pw_uid}, files
        assert not root_state(system_user).exists()
        root_started.kill()  # kill -9: the log files stay, for the user to replay
    finally:
        root_started.cleanup()

    user_started = server(system_user, switch=False).start()
    try:
        assert sorted(drain(user_started.port)) == sorted(acked)
    finally:
        user_started.cleanup()


def test_a_queue_the_user_cannot_write_is_a_one_line_startup_error(
    system_user: pwd.struct_passwd, tmp_path: Path
) -> None:
    root_only = tmp_path / "queue"
    root_only.mkdir(mode=0o755)
    log = tmp_path / "log"
    proc = server(system_user, f"--libsqlite3-db={root_only / 'queue.sqlite3'}", f"-l{log}")
    result = subprocess.run(proc.argv, capture_output=True, text=True, timeout=60)
    assert_one_line_failure(result, f"cannot open the queue: sqlite {root_only}")
    assert "Permission denied" in result.stderr
    assert not list(root_only.iterdir())


def test_a_failing_background_fsync_refuses_jobs_until_it_succeeds(
    system_user: pwd.struct_passwd,
) -> None:
    console_port = free_port()
    srv = server(system_user, f"--console-port={console_port}").start()
    try:
        console = Console(srv, console_port)
        acked = submit_jobs(srv.port, 1)
        [log_file] = Path(system_user.pw_dir).glob(".local/state/geartrain/*.pending-*")
        log_file.chmod(0)  # the user's server can no longer open it to fsync it
        acked += submit_jobs(srv.port, 1)

        wait_for(lambda: readyz(console)[0] == 503, timeout=30)
        text = readyz(console)[1]
        assert text.startswith("not ready: queue store failing: "), text
        assert "background fsync failed" in text and "Permission denied" in text
        assert failed_fsyncs(console) >= 1
        # Past the limit, jobs are refused rather than acknowledged without the promise.
        deadline = time.monotonic() + 30
        while (new := submit_jobs(srv.port, 1)) and time.monotonic() < deadline:
            acked += new
            time.sleep(0.2)
        assert not new, "jobs still acknowledged while the fsync keeps failing"
        assert failed_fsyncs(console) >= SYNC_FAILURE_LIMIT
        assert "refusing background jobs" in srv.log()

        log_file.chmod(0o600)  # fsync works again: so do submissions
        wait_for(lambda: readyz(console) == (200, "ready\n"), timeout=30)
        acked += submit_jobs(srv.port, 5)
        assert sorted(drain(srv.port)) == sorted(acked)
        assert "Queue store is back" in srv.log()
    finally:
        srv.cleanup()
