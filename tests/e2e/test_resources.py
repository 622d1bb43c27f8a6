"""Resources under abuse: memory follows what peers send, numbers have a bounded
length, registrations cost little, limits hold and are counted.  Each test runs
a real server process and reads its memory from /proc."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from geartrain.protocol import HEADER, REQ, pack
from geartrain.server.settings import parse_settings
from serverproc import ServerProc, free_port
from wire import T, Wire

MiB = 1 << 20
PHP_CLIENT = Path(__file__).parent.parent / "php_peers" / "client.php"


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    """True once ``check`` is (a connection error counts as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return check()


def echo_ok(port: int) -> bool:
    with Wire(port, timeout=20) as w:
        w.send(T.ECHO_REQ, b"alive")
        return w.expect(T.ECHO_RES) == (b"alive",)


def closes_on(conn: Wire, data: bytes) -> bool:
    """Send ``data``; True if the server closes the connection (perhaps before all is sent)."""
    try:
        conn.raw(data)
    except OSError:
        return True
    return conn.closed_by_server()


def announce(port: int, size: int, sent: int) -> Wire:
    """A connection whose header announces ``size`` bytes, of which ``sent`` follow."""
    conn = Wire(port, timeout=30)
    conn.raw(HEADER.pack(REQ, T.ECHO_REQ, size) + b"x" * sent)
    return conn


def test_memory_follows_bytes_received_not_bytes_announced(server: ServerProc) -> None:
    echo_ok(server.port)
    before = rss(server.pid)
    socks = [announce(server.port, 60 * MiB, 1024) for _ in range(20)]
    try:
        echo_ok(server.port)  # everything sent so far has been read
        grown = rss(server.pid) - before
        # 20 x 60 MiB announced; what was received (20 KiB) and small buffers are held.
        assert grown < 16 * MiB, f"RSS grew by {grown / MiB:.1f} MiB"
    finally:
        for sock in socks:
            sock.close()


class Flood:
    """A peer that sends the same packet over and over, as fast as the server takes
    it, reading the replies so that flow control never stops it, until ``stop`` (or
    for two minutes at most)."""

    def __init__(self, port: int, packet: bytes) -> None:
        self.sock = Wire(port, timeout=120).sock
        self.burst = packet * max(1, 64 * 1024 // len(packet))
        self.sent = 0
        self._stop = threading.Event()
        self.sender = threading.Thread(target=self._send, daemon=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.sender.start()
        self.reader.start()

    def _send(self) -> None:
        deadline = time.monotonic() + 120
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self.sock.sendall(self.burst)
                self.sent += len(self.burst)
        except OSError:
            pass

    def _read(self) -> None:
        try:
            while self.sock.recv(1 << 20):
                pass
        except OSError:
            pass

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):  # unblocks both threads
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sender.join(30)
        self.reader.join(30)
        self.sock.close()


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(pack(REQ, T.ECHO_REQ, (b"x" * 16,)), marks=pytest.mark.gearmand_differs),
        pack(REQ, T.ECHO_REQ, (b"x" * (8 * MiB),)),
    ],
    ids=["small-packets", "8MiB-packets"],
)
def test_a_client_is_answered_while_peers_flood(server: ServerProc, packet: bytes) -> None:
    """A flooding peer's packets are handled a slice at a time: others are answered
    while it is still sending."""
    if server.kind == "gearmand" and len(packet) < MiB:
        pytest.xfail("gearmand 1.1 starves connections that share an I/O thread with a flood")
    floods = [Flood(server.port, packet) for _ in range(2)]
    try:
        assert eventually(lambda: all(f.sent >= 4 * MiB for f in floods), timeout=60)
        for _ in range(5):
            assert echo_ok(server.port)
        assert all(f.sender.is_alive() for f in floods), "the floods ended first"
    finally:
        for flood in floods:
            flood.stop()
    assert echo_ok(server.port)


def test_buffers_are_given_back_after_their_connections_close(geartrain: ServerProc) -> None:
    echo_ok(geartrain.port)
    before = rss(geartrain.pid)
    socks = [announce(geartrain.port, 40 * MiB, 12 * MiB) for _ in range(8)]
    echo_ok(geartrain.port)
    assert rss(geartrain.pid) - before > 64 * MiB  # the partial packets are held
    for sock in socks:
        sock.close()
    # Freed at once (no reference cycle), and returned to the system once idle.
    assert eventually(lambda: rss(geartrain.pid) - before < 24 * MiB), (
        f"RSS still {(rss(geartrain.pid) - before) / MiB:.1f} MiB above the start"
    )


@pytest.mark.parametrize(
    ("ptype", "args"),
    [
        (T.SUBMIT_JOB_EPOCH, (b"f", b"", b"9" * (16 * MiB), b"data")),
        (T.SUBMIT_JOB_EPOCH, (b"f", b"", b" " * (16 * MiB) + b"1", b"data")),
        (T.CAN_DO_TIMEOUT, (b"f", b"1" * (16 * MiB))),
    ],
    ids=["epoch digits", "epoch spaces", "timeout digits"],
)
def test_an_overlong_number_closes_the_connection(
    server: ServerProc, ptype: T, args: tuple[bytes, ...]
) -> None:
    with Wire(server.port, timeout=20) as bad:
        assert closes_on(bad, pack(REQ, ptype, args))
    assert echo_ok(server.port)


@pytest.mark.parametrize(
    "overlong",
    ["denominator", pytest.param("numerator", marks=pytest.mark.gearmand_differs)],
)
def test_an_overlong_work_status_number_closes_the_worker(
    server: ServerProc, overlong: str
) -> None:
    with Wire(server.port, timeout=20) as c, Wire(server.port, timeout=20) as w:
        handle = c.submit(b"f", b"x")
        w.send(T.CAN_DO, b"f")
        assert w.grab() is not None
        big = b"7" * (32 * MiB)
        numbers = (big, b"2") if overlong == "numerator" else (b"1", big)
        if server.kind == "gearmand" and overlong == "numerator":
            pytest.xfail("gearmand reads a numerator of any length")
        assert closes_on(w, pack(REQ, T.WORK_STATUS, (handle, *numbers)))
    assert echo_ok(server.port)


def test_can_do_timeout_below_a_second_is_raised_to_a_second(server: ServerProc) -> None:
    # Node libraries send seconds: "2" must not fail the job 2 ms after assignment.
    with Wire(server.port) as c, Wire(server.port) as w:
        handle = c.submit(b"slowish", b"x")
        w.send(T.CAN_DO_TIMEOUT, b"slowish", b"2")
        assert w.grab() is not None
        time.sleep(0.3)
        w.send(T.WORK_COMPLETE, handle, b"done")
        assert c.expect(T.WORK_COMPLETE) == (handle, b"done")


@pytest.mark.parametrize(
    "kind", ["geartrain", pytest.param("gearmand", marks=pytest.mark.gearmand_differs)]
)
def test_a_repeated_can_do_counts_once(start_server: Callable[..., ServerProc], kind: str) -> None:
    server = start_server(kind)
    with Wire(server.port) as w, Wire(server.port) as admin:
        w.send(T.SET_CLIENT_ID, b"twice")
        for _ in range(3):
            w.send(T.CAN_DO, b"f")
        w.sync()
        status = admin.admin("status")
        if kind == "gearmand":
            assert status == b"f\t0\t0\t3\n.\n"  # one registration per CAN_DO
            return
        assert status == b"f\t0\t0\t1\n.\n"
        assert b" twice : f\n" in admin.admin("workers")


def test_a_worker_with_100000_functions_grabs_cheaply(geartrain: ServerProc) -> None:
    names = [b"fn-%06d" % i for i in range(100_000)]
    with Wire(geartrain.port, timeout=60) as w, Wire(geartrain.port, timeout=60) as c:
        w.sync()
        before = rss(geartrain.pid)
        w.raw(b"".join(pack(REQ, T.CAN_DO, (name,)) for name in names))
        w.raw(pack(REQ, T.CAN_DO, (names[0],)) * 10_000)  # repeats are ignored
        w.sync()
        per_function = (rss(geartrain.pid) - before) / len(names)
        assert per_function < 1600, f"{per_function:.0f} bytes per function"
        assert echo_ok(geartrain.port)  # the loop kept serving others
        handle = c.submit(names[-1], b"last", ptype=T.SUBMIT_JOB_BG)
        assert w.grab() == (handle, names[-1], b"", b"last")
        assert w.grab() is None


def test_unused_functions_are_forgotten_past_the_idle_limit(
    start_server: Callable[..., ServerProc],
) -> None:
    server = start_server("geartrain", ["--max-idle-functions", "10"])
    with Wire(server.port) as w:
        for i in range(100):
            w.send(T.CAN_DO, b"f%d" % i)
        w.sync()
    with Wire(server.port) as admin:
        assert eventually(lambda: admin.admin("status").count(b"\n") == 11)


@pytest.mark.parametrize(
    "kind", ["geartrain", pytest.param("gearmand", marks=pytest.mark.gearmand_differs)]
)
def test_tab_and_newline_in_names_cannot_forge_admin_lines(
    start_server: Callable[..., ServerProc], kind: str
) -> None:
    server = start_server(kind)
    name = b"evil\t9\t9\t9\nfake"
    with Wire(server.port) as w, Wire(server.port) as admin:
        w.send(T.CAN_DO, name)
        w.sync()
        status = admin.admin("status")
        prio = admin.admin("prioritystatus")
        workers = admin.admin("workers")
        if kind == "gearmand":
            assert status == name + b"\t0\t0\t1\n.\n"  # a fake line
            return
        assert status == b"evil\\t9\\t9\\t9\\nfake\t0\t0\t1\n.\n"
        assert prio == b"evil\\t9\\t9\\t9\\nfake\t0\t0\t0\t1\n.\n"
        assert workers.count(b"\n") == 3  # two connections and "."


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def limited(start_server: Callable[..., ServerProc], *args: str) -> tuple[ServerProc, int]:
    metrics_port = free_port()
    server = start_server("geartrain", [*args, "--metrics-port", str(metrics_port)])
    return server, metrics_port


def test_connection_limit(start_server: Callable[..., ServerProc]) -> None:
    server, mport = limited(start_server, "--max-connections", "5")
    held = [Wire(server.port) for _ in range(4)]  # and the readiness probe is gone
    for w in held:
        w.sync()
    with Wire(server.port) as fifth:
        fifth.sync()
        with Wire(server.port) as sixth:
            assert sixth.closed_by_server()
    assert metric(mport, 'geartrain_limit_reached_total{limit="connections"}') >= 1
    assert "Connection limit (5) reached" in server.log()
    for w in held:
        w.close()
    assert eventually(lambda: echo_ok(server.port))


def test_no_busy_loop_at_the_open_file_limit(start_server: Callable[..., ServerProc]) -> None:
    server = start_server("geartrain", ["-f", "48", "--max-connections", "1000"])
    socks = []
    for _ in range(80):  # well past the 48 descriptors the process may open
        socks.append(Wire(server.port, timeout=60))
    time.sleep(0.5)
    used = cpu_seconds(server.pid)
    time.sleep(3)
    assert cpu_seconds(server.pid) - used < 1.0, "the server spins at the fd limit"
    for sock in socks:
        sock.close()
    assert eventually(lambda: echo_ok(server.port))


def test_a_peer_that_does_not_read_is_dropped_and_others_get_the_result(
    start_server: Callable[..., ServerProc],
) -> None:
    server, mport = limited(start_server, "--max-output-bytes", str(4 * MiB))
    slow = Wire(server.port, timeout=20)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    with Wire(server.port, timeout=30) as reader, Wire(server.port, timeout=30) as w:
        slow.send(T.SUBMIT_JOB, b"stream", b"u1", b"")
        time.sleep(0.2)
        handle = reader.submit(b"stream", b"", b"u1")
        w.send(T.CAN_DO, b"stream")
        assert w.grab() is not None
        chunk = b"d" * MiB
        for _ in range(40):
            w.send(T.WORK_DATA, handle, chunk)
            assert reader.expect(T.WORK_DATA) == (handle, chunk)
        w.send(T.WORK_COMPLETE, handle, b"end")
        assert reader.expect(T.WORK_COMPLETE) == (handle, b"end")
    assert metric(mport, 'geartrain_limit_reached_total{limit="output"}') >= 1
    assert slow.closed_by_server()  # reset, or EOF after what was in flight
    slow.close()


def test_input_limit_closes_the_greediest_connection(
    start_server: Callable[..., ServerProc],
) -> None:
    server, mport = limited(start_server, "--max-input-bytes", str(20 * MiB))
    small = announce(server.port, 40 * MiB, 2 * MiB)
    big = announce(server.port, 40 * MiB, 12 * MiB)
    echo_ok(server.port)
    last = announce(server.port, 40 * MiB, 8 * MiB)  # 22 MiB held: past the limit
    assert big.closed_by_server(20)
    assert echo_ok(server.port)
    assert metric(mport, 'geartrain_limit_reached_total{limit="input"}') >= 1
    for sock in (small, big, last):
        sock.close()


def test_job_limits(start_server: Callable[..., ServerProc]) -> None:
    server, mport = limited(start_server, "--max-jobs", "3", "--max-job-bytes", "100")
    with Wire(server.port) as c:
        for i in range(3):
            c.submit(b"f", b"%d" % i, ptype=T.SUBMIT_JOB_BG)
        c.send(T.SUBMIT_JOB_BG, b"f", b"", b"x")
        assert c.expect(T.ERROR) == (b"QUEUE_ERROR", b"Job queue is full")
        c.send(T.SUBMIT_JOB_BG, b"g", b"", b"x" * 101)
        assert c.expect(T.ERROR) == (b"QUEUE_ERROR", b"Job queue is full")
    assert metric(mport, 'geartrain_limit_reached_total{limit="queue"}') == 2


def php_background(port: int, function: str, data: bytes) -> str:
    """Submit a background job with php-gearman; "" if accepted, else its error."""
    php = shutil.which("php")
    assert php, "php is not installed (scripts/install-system-deps installs it)"
    done = subprocess.run(
        [php, str(PHP_CLIENT), "127.0.0.1", str(port), function, "background"],
        input=data,
        capture_output=True,
        timeout=60,
    )
    return "" if done.returncode == 0 else done.stderr.decode()


def gearman_background(port: int, function: str, data: str) -> str:
    """Submit a background job with the gearman tool; its error output ("": accepted)."""
    done = subprocess.run(
        ["gearman", "-h", "127.0.0.1", "-p", str(port), "-f", function, "-b", data],
        capture_output=True,
        timeout=60,
    )
    return done.stderr.decode()


def test_per_function_limits(start_server: Callable[..., ServerProc]) -> None:
    server, mport = limited(start_server, "--max-function-jobs", "2", "--max-function-bytes", "10")
    assert php_background(server.port, "f", b"1") == ""
    assert php_background(server.port, "f", b"2") == ""
    refused = php_background(server.port, "f", b"3")
    assert "QUEUE_ERROR" in refused and "Job queue is full" in refused
    assert php_background(server.port, "g", b"12345678") == ""  # other functions go on
    assert "QUEUE_ERROR" in php_background(server.port, "g", b"123")  # 11 bytes > 10
    assert php_background(server.port, "g", b"12") == ""  # exactly 10
    assert metric(mport, 'geartrain_limit_reached_total{limit="function"}') == 2
    assert metric(mport, 'geartrain_limit_reached_total{limit="queue"}') == 0
    log = server.log()  # once per episode, for each function
    assert log.count("Job limit of function f reached (2 jobs, 2 bytes held)") == 1
    assert log.count("Job limit of function g reached (1 jobs, 8 bytes held)") == 1
    with Wire(server.port) as w:  # a worker takes one of f's jobs away: room again
        w.send(T.CAN_DO, b"f")
        job = w.grab()
        assert job is not None
        w.send(T.WORK_COMPLETE, job[0], b"")
        w.sync()
    assert php_background(server.port, "f", b"4") == ""


def test_per_function_limits_from_the_settings_file(
    start_server: Callable[..., ServerProc], tmp_path: Path
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        '[defaults]\nmax_jobs = 1\n\n[functions."bulk_*"]\nmax_jobs = 0\nmax_bytes = 4\n'
    )
    server = start_server("geartrain", [f"--settings={settings}", "--max-function-jobs", "5"])
    assert gearman_background(server.port, "one", "a") == ""
    assert "QUEUE_ERROR" in gearman_background(server.port, "one", "b")  # [defaults] wins
    for i in range(4):  # no job limit for bulk_*, but 4 bytes
        assert gearman_background(server.port, "bulk_load", str(i)) == ""
    assert "QUEUE_ERROR" in gearman_background(server.port, "bulk_load", "x")


def test_per_function_limits_are_whole_numbers() -> None:
    with pytest.raises(ValueError, match="max_bytes must be a whole number of at least 0"):
        parse_settings({"functions": {"f": {"max_bytes": -1}}})
    with pytest.raises(ValueError, match="max_jobs must be a whole number"):
        parse_settings({"defaults": {"max_jobs": 1.5}})


def test_admin_line_limit(start_server: Callable[..., ServerProc]) -> None:
    server = start_server("geartrain", ["--max-line-size", "100"])
    with Wire(server.port) as a:
        assert a.admin("version").startswith(b"OK")
        a.raw(b"s" * 200)
        assert a.closed_by_server()


def test_the_server_sleeps_once_a_busy_spell_is_over(geartrain: ServerProc) -> None:
    with Wire(geartrain.port) as w:  # round trips back to back: the loop polls between them
        for _ in range(2000):
            w.send(T.ECHO_REQ, b"x")
            w.expect(T.ECHO_RES)
    time.sleep(0.5)
    used = cpu_seconds(geartrain.pid)
    time.sleep(2)
    assert cpu_seconds(geartrain.pid) - used < 0.1, "the server polls while idle"
