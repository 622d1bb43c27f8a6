"""A server that cannot start says why in one line and exits with status 1; it binds
its port before it opens the queue; errors the event loop reports reach its log."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from serverproc import ServerProc, free_port
from wire import admin_command

SERVER = [sys.executable, "-m", "geartrain", "server", "-L", "127.0.0.1"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SERVER, *args], capture_output=True, text=True, timeout=60)


def assert_one_line_failure(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert text in result.stderr
    assert "Stopped with" not in result.stderr


def test_port_taken_fails_before_the_queue_is_opened(geartrain: ServerProc, tmp_path: Path) -> None:
    queue, log = tmp_path / "q.sqlite3", tmp_path / "log"
    result = run("-p", str(geartrain.port), f"--libsqlite3-db={queue}", "-l", str(log))
    assert_one_line_failure(result, f"cannot listen on 127.0.0.1:{geartrain.port}")
    assert "address already in use" in result.stderr.lower()
    assert not queue.exists()  # not even created
    assert "Queue:" not in log.read_text()


@pytest.mark.parametrize(
    ("queue_args", "text"),
    [
        (["--libsqlite3-db=/proc/nope/q.sqlite3"], "cannot open the queue: sqlite /proc/nope"),
        (
            ["-q", "postgres", f"--libpq-conninfo=host=127.0.0.1 port={free_port()} user=x"],
            "cannot open the queue: postgresql",
        ),
        (
            ["-q", "redis", "--redis-server=127.0.0.1", f"--redis-port={free_port()}"],
            "cannot open the queue: redis",
        ),
        (
            ["-q", "mysql", "--mysql-host=127.0.0.1", f"--mysql-port={free_port()}"]
            + ["--mysql-db=x"],
            "cannot open the queue: mysql",
        ),
    ],
    ids=["sqlite-unwritable", "postgres-down", "redis-down", "mysql-down"],
)
def test_queue_that_cannot_open_is_one_line_status_1(
    queue_args: list[str], text: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    result = run("-p", str(free_port()), *queue_args, "-l", str(log))
    assert_one_line_failure(result, text)
    assert "CRITICAL" in log.read_text() and text in log.read_text()


def start_logging_server(args: list[str]) -> ServerProc:
    port = free_port()
    return ServerProc("geartrain", [*SERVER, "-p", str(port), *args], port).start()


def test_syslog_without_a_daemon_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in most containers: nothing listens where syslog should be.
    monkeypatch.setenv("GEARTRAIN_SYSLOG_SOCKET", str(tmp_path / "no-such-socket"))
    srv = start_logging_server(["-q", "builtin", "--syslog", "--verbose=DEBUG"])
    try:
        admin_command(srv.port, "status")
        assert srv.stop() == 0
        log = srv.log()
    finally:
        srv.cleanup()
    assert "Logging error" not in log and "Traceback" not in log
    assert log.count("no syslog daemon at") == 1
    assert "Stopped with 0 job(s)" in log


def test_syslog_receives_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as daemon:
        daemon.bind(str(path))
        daemon.settimeout(30)
        monkeypatch.setenv("GEARTRAIN_SYSLOG_SOCKET", str(path))
        srv = start_logging_server(["-q", "builtin", "--syslog", "-l", "none"])
        try:
            lines = [daemon.recv(4096) for _ in range(2)]
        finally:
            srv.cleanup()
    assert lines[0].startswith(b"<") and b"geartrain: NOTICE geartrain.server: Queue:" in lines[0]
    assert b"listening on" in lines[1]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_event_loop_errors_reach_the_log_file(tmp_path: Path, loop: str) -> None:
    """The event loop reports some errors itself (e.g. "Fatal error on transport");
    with -d the process has no stderr, so they must go to the server's log."""
    script = tmp_path / "loop_error.py"
    log = tmp_path / "log"
    script.write_text(
        "import asyncio, sys\n"
        "from geartrain.server.logs import setup_logging\n"
        "setup_logging(sys.argv[1], 'ERROR')\n"
        "async def main():\n"
        "    asyncio.get_running_loop().call_exception_handler(\n"
        "        {'message': 'Fatal error on transport', 'exception': MemoryError()})\n"
        f"import {loop}\n"
        f"{loop}.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, str(script), str(log)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stderr == ""
    text = log.read_text()
    assert "ERROR asyncio: Fatal error on transport" in text and "MemoryError" in text


# -- a file or port the flags name is unusable: one line naming it, the cause and the fix ------


def assert_names(result: subprocess.CompletedProcess[str], *texts: str) -> None:
    assert_one_line_failure(result, texts[0])
    assert all(text in result.stderr for text in texts), result.stderr
    assert "see geartrain server --help" not in result.stderr  # the help says nothing of files


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private key that is not the certificate's."""
    path = tmp_path_factory.mktemp("other") / "other.key"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-out", str(path)],
        check=True,
        capture_output=True,
    )
    return path


@pytest.mark.parametrize("case", ["missing", "swapped", "no-key", "other-key"])
def test_tls_files_that_do_not_load_are_named(
    certificate: tuple[Path, Path], other_key: Path, case: str
) -> None:
    cert, key = (str(path) for path in certificate)
    flags, texts = {
        "missing": (
            [f"--ssl-certificate=/nonexistent/{case}.pem", f"--ssl-key={key}"],
            [f"--ssl-certificate /nonexistent/{case}.pem: cannot read it (No such file"],
        ),
        "swapped": (
            [f"--ssl-certificate={key}", f"--ssl-key={cert}"],
            [f"--ssl-certificate {key} holds a private key, not a certificate", "give it the"],
        ),
        "no-key": (
            [f"--ssl-certificate={cert}"],
            [f"--ssl-certificate {cert} holds no PEM private key; give it with --ssl-key"],
        ),
        "other-key": (
            [f"--ssl-certificate={cert}", f"--ssl-key={other_key}"],
            [f"--ssl-key {other_key} is not the certificate's key", "give that key"],
        ),
    }[case]
    assert_names(run("-q", "builtin", "-p", str(free_port()), "--ssl", *flags), *texts)


def test_tls_flags_without_ssl_are_reported(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    srv = start_logging_server(["-q", "builtin", f"--ssl-certificate={cert}", f"--ssl-key={key}"])
    try:
        assert admin_command(srv.port, "version").startswith(b"OK")  # plaintext, as gearmand
        log = srv.log()
    finally:
        srv.cleanup()
    assert (
        "WARNING geartrain.server: --ssl-certificate, --ssl-key without --ssl: ignored, "
        "connections are not encrypted; add --ssl to require TLS"
    ) in log


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--console-port", "{taken}"], "--console-port {taken}"),
        (["-r", "http", "--http-port", "{taken}"], "--http-port {taken}"),
    ],
    ids=["console", "http-gateway"],
)
def test_taken_http_port_names_its_flag(
    geartrain: ServerProc, tmp_path: Path, flags: list[str], named: str
) -> None:
    taken = str(geartrain.port)
    flags = [flag.replace("{taken}", taken) for flag in flags]
    result = run("-q", "builtin", "-p", str(free_port()), "-l", str(tmp_path / "log"), *flags)
    assert_names(
        result,
        f"{named.replace('{taken}', taken)}: cannot listen (Address already in use)",
        "stop what holds the port or choose another",
    )


def test_log_file_that_cannot_be_opened_is_named() -> None:
    result = run("-q", "builtin", "-p", str(free_port()), "-l", "/nonexistent/x.log")
    assert_names(
        result,
        "--log-file /nonexistent/x.log: cannot open it (No such file or directory)",
        "give a file in a writable directory, or stderr, or none",
    )


def test_queue_under_a_regular_file_is_named(tmp_path: Path) -> None:
    regular = tmp_path / "regular"
    regular.write_text("")
    result = run("-p", str(free_port()), f"--libsqlite3-db={regular}/q.sqlite3", "-l", "none")
    assert_names(
        result,
        f"cannot open the queue: sqlite {regular}/q.sqlite3",
        f"{regular}: a file, not a directory; give --libsqlite3-db a path in a directory",
    )


def test_bad_settings_file_is_named_without_pointing_at_the_help(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[retry.x]\nattempts = "a"\n')
    result = run("-q", "builtin", "-p", str(free_port()), f"--settings={path}")
    assert_names(
        result,
        f"settings file {path}: unknown table [retry] (--settings)",
        "correct the file as docs/failures.md describes",
    )


def test_missing_queue_driver_names_the_extra_to_install(tmp_path: Path) -> None:
    # asyncpg made unimportable, as on an install without the postgres extra.
    (tmp_path / "asyncpg").mkdir()
    (tmp_path / "asyncpg" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'asyncpg'\", name='asyncpg')\n"
    )
    result = subprocess.run(
        [*SERVER, "-p", str(free_port()), "-q", "postgres"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert_names(
        result,
        "the postgres queue needs asyncpg: pip install 'geartrain[postgres]' "
        "(from a source checkout: pip install '.[postgres]')",
    )
