"""`geartrain client|worker|admin` against Debian's `gearman` and `gearadmin`.

Each case runs the C tool and ours with the same arguments and input against
the same server, and compares stdout, stderr and the exit status byte for
byte.  Three things are normalised: the program name in help texts, the
block of geartrain's own options that follows the C tool's help text, and the
" -> file:line: pid(N)" suffix libgearman appends to its error messages.
Job handles are replaced by ``H:N`` since every submission gets a new one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import serverproc
from geartrain import sync
from geartrain.cli.admin import EXTRA as GEARADMIN_EXTRA
from geartrain.cli.gearman_args import USAGE_EXTRA as GEARMAN_EXTRA
from serverproc import ServerProc, free_port

pytestmark = [
    pytest.mark.interop,
    pytest.mark.timeout(60),
    pytest.mark.skipif(not shutil.which("gearman"), reason="Debian's gearman tools"),
]

OURS = {
    "gearman": [sys.executable, "-m", "geartrain", "client"],
    "gearman -w": [sys.executable, "-m", "geartrain", "worker"],
    "gearadmin": [sys.executable, "-m", "geartrain", "admin"],
}
NAMES = {"gearman": "geartrain client", "gearadmin": "geartrain admin"}
EXTRAS = {
    "gearman": GEARMAN_EXTRA.encode(),
    "gearman -w": GEARMAN_EXTRA.encode(),
    "gearadmin": GEARADMIN_EXTRA.encode(),
}

PEER_WORKER = textwrap.dedent(
    """
    import sys
    from geartrain import sync

    worker = sync.Worker(sys.argv[1])

    @worker.register("progress")
    def progress(job):
        job.send_status(1, 4)
        job.send_status(3, 4)
        job.send_data(b"chunk\\n")
        job.send_warning(b"careful\\n")
        return b"end\\n"

    @worker.register("raises")
    def raises(job):
        raise ValueError("nope")

    worker.run()
    """
)

C_WORKERS = {
    "wc": ["--", "wc", "-c"],
    "fail": ["--", "false"],
    "failout": ["--", "sh", "-c", "echo partial; exit 3"],
    "rev": ["--", "rev"],
}


def run(argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple:
    proc = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout, proc.stderr


def normalise(data: bytes, tool: str) -> bytes:
    data = re.sub(rb" -> libgearman/[^\n]*pid\(\d+\)", b"", data)
    data = re.sub(rb"H:[^\s:]+:\d+", b"H:N", data)
    data = data.replace(EXTRAS[tool], b"")
    if tool in NAMES:
        data = data.replace(NAMES[tool].encode(), tool.encode())
    return data


def compare(tool: str, args: list[str], stdin: bytes = b"", env: dict[str, str] | None = None):
    theirs = run([tool.split()[0], *tool.split()[1:], *args], stdin, env)
    ours = run([*OURS[tool], *args], stdin, env)
    theirs = (theirs[0], normalise(theirs[1], tool), normalise(theirs[2], tool))
    ours = (ours[0], normalise(ours[1], tool), normalise(ours[2], tool))
    assert ours == theirs
    return ours


def wait_registered(address: str, *functions: str) -> None:
    deadline = time.monotonic() + 10
    with sync.Admin(address) as admin:
        while time.monotonic() < deadline:
            workers = {s.function: s.workers for s in admin.status()}
            if all(workers.get(f) for f in functions):
                return
            time.sleep(0.02)
    raise AssertionError(f"{functions} not registered")


@pytest.fixture(scope="module", params=["geartrain", "gearmand"])
def peers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A server with C `gearman -w` workers and a geartrain worker that sends updates."""
    srv = serverproc.start(request.param)
    port = str(srv.port)
    script = tmp_path_factory.mktemp("peer") / "worker.py"
    script.write_text(PEER_WORKER)
    procs = [
        subprocess.Popen(["gearman", "-p", port, "-w", "-f", name, *cmd])
        for name, cmd in C_WORKERS.items()
    ]
    procs.append(subprocess.Popen([sys.executable, str(script), srv.address]))
    try:
        wait_registered(srv.address, *C_WORKERS, "progress", "raises")
        yield srv
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        srv.cleanup()


CLIENT_CASES = [
    ["-f", "wc", "Hello"],
    ["-f", "wc", "-f", "wc", "Hello", "World"],
    ["-P", "-f", "wc", "Hello"],
    ["-f", "fail", "x"],
    ["-P", "-f", "failout", "x"],
    ["-f", "rev", "-s"],
    ["-b", "-f", "wc", "x"],
    ["-b", "-v", "-f", "wc", "x"],
    ["-v", "-f", "wc", "x"],
    ["-I", "-f", "wc", "x"],
    ["-L", "-u", "abc", "-f", "wc", "x"],
    ["-b", "-I", "-f", "rev", "x"],
    ["-f", "progress", "x"],
    ["-P", "-f", "progress", "x"],
    ["-fwc", "-p{port}", "x"],
    ["x", "-f", "wc", "y"],
]


@pytest.mark.parametrize("args", CLIENT_CASES, ids=" ".join)
def test_client_mode(peers: ServerProc, args: list[str]) -> None:
    args = [a.replace("{port}", str(peers.port)) for a in args]
    compare("gearman", ["-p", str(peers.port), *args])


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["-f", "wc"], b"one\ntwo\n"),
        (["-n", "-f", "wc"], b"one\ntwo\n"),
        (["-N", "-f", "wc"], b"one\ntwo\n"),
        (["-s", "-f", "wc"], b"ignored"),
        (["-f", "rev"], b"binary\0data\n"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else repr(v),
)
def test_client_mode_stdin(peers: ServerProc, args: list[str], stdin: bytes) -> None:
    compare("gearman", ["-p", str(peers.port), *args], stdin)


@pytest.mark.parametrize("args", [["-f", "raises", "x"], ["-P", "-f", "raises", "-f", "wc", "x"]])
def test_worker_exception(peers: ServerProc, args: list[str]) -> None:
    # The tools do not ask for exceptions, so the server turns WORK_EXCEPTION
    # into WORK_FAIL.  gearmand's carries a trailing NUL ("H\0") that the C
    # tool does not match to its job: it hangs (gearmand #166).  geartrain
    # sends a clean WORK_FAIL.  Ours handles both.
    argv = ["-p", str(peers.port), *args]
    if peers.kind == "gearmand":
        rc, out, err = run([*OURS["gearman"], *argv])
        assert rc == 1 and err.endswith(b"Job failed\n")
    else:
        rc, out, err = compare("gearman", argv)
    assert b"Job failed\n" in err


def test_gearman_server_variable(peers: ServerProc) -> None:
    dead = free_port()
    env = {"GEARMAN_SERVER": f"127.0.0.1:{peers.port}"}
    assert compare("gearman", ["-f", "wc", "abc"], env=env)[1] == b"3\n"
    # -h/-p are ignored when the variable is set.
    compare("gearman", ["-p", str(dead), "-f", "wc", "abc"], env=env)


@pytest.mark.parametrize(
    "args",
    [[], ["-H"], ["-f", "x", "-Z"], ["-v", "-H"], ["-f", "x", "-t"], ["-w"], ["-H", "-f", "x"]],
    ids=" ".join,
)
def test_usage(args: list[str]) -> None:
    compare("gearman", args)


def test_connection_refused() -> None:
    rc, out, err = compare("gearman", ["-p", str(free_port()), "-f", "wc", "x"])
    assert rc == 0 and b"GEARMAN_COULD_NOT_CONNECT" in err


@pytest.mark.parametrize("background", [True, False], ids=["-b", "foreground"])
def test_queue_full(server: ServerProc, background: bool) -> None:
    with sync.Client(server.address) as client:
        client.submit_background("full", b"first")
    with sync.Admin(server.address) as admin:  # after the function exists, as gearmand wants
        admin.maxqueue("full", 1)
    flags = ["-b"] if background else []
    rc, out, err = compare("gearman", ["-p", str(server.port), *flags, "-f", "full", "x"])
    assert err == (
        b"gearman: gearman_client_run_tasks : "
        b"_client_run_tasks(GEARMAN_QUEUE_ERROR) QUEUE_ERROR:Job queue is full\n"
    )


def test_client_timeout(peers: ServerProc) -> None:
    rc, _, err = compare("gearman", ["-p", str(peers.port), "-t", "300", "-f", "nobody", "x"])
    assert rc == 0 and b"GEARMAN_TIMEOUT" in err


# -- worker mode ------------------------------------------------------------------------


def worker_round(tool: str, srv: ServerProc, wargs: list[str], function: str, data: str) -> tuple:
    """Start a `-c 1` worker, submit one job with the C client; return both sides' output."""
    argv = [*OURS["gearman -w"]] if tool == "ours" else ["gearman", "-w"]
    worker = subprocess.Popen(
        [*argv, "-p", str(srv.port), "-c", "1", "-f", function, *wargs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_registered(srv.address, function)
        client = run(["gearman", "-p", str(srv.port), "-f", function, data])
        out, err = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    return client, (worker.returncode, out, err)


@pytest.fixture
def server_pair(request: pytest.FixtureRequest) -> Iterator[ServerProc]:
    srv = serverproc.start(request.param)
    yield srv
    srv.cleanup()


@pytest.mark.parametrize("server_pair", ["geartrain", "gearmand"], indirect=True)
@pytest.mark.parametrize(
    ("wargs", "data"),
    [
        (["--", "wc", "-c"], "Hello"),
        ([], "echoed to stdout"),
        (["--", "sh", "-c", "echo partial; exit 3"], "x"),
        (["--", "false"], "x"),
        (["--", "tr", "a-z", "A-Z"], "shout"),
        (["-n", "--", "printf", "one line\\n"], "x"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_worker_mode(server_pair: ServerProc, wargs: list[str], data: str) -> None:
    function = f"w{abs(hash((tuple(wargs), data))) % 10**6}"
    theirs = worker_round("theirs", server_pair, wargs, function, data)
    ours = worker_round("ours", server_pair, wargs, function, data)
    assert ours == theirs


@pytest.mark.parametrize("server_pair", ["geartrain", "gearmand"], indirect=True)
def test_worker_sends_each_line_once(server_pair: ServerProc) -> None:
    # gearman 1.1.20 resends every earlier line with each packet (a buffer it
    # never clears); geartrain sends each line once, as documented.
    client, _ = worker_round(
        "ours", server_pair, ["-n", "--", "printf", "a\\nb\\nc\\n"], "lines", "x"
    )
    assert client == (0, b"a\nb\nc\n", b"")
    client, _ = worker_round(
        "ours", server_pair, ["-N", "--", "printf", "a\\nb\\nc"], "slines", "x"
    )
    assert client == (0, b"abc", b"")  # gearman 1.1.20 drops the "c" too


def test_worker_timeout_counts_towards_c(peers: ServerProc) -> None:
    for argv in (["gearman", "-w"], OURS["gearman -w"]):
        started = time.monotonic()
        rc, out, err = run([*argv, "-p", str(peers.port), "-c", "1", "-t", "300", "-f", "idle"])
        assert rc == 0 and out == b"" and b"GEARMAN_TIMEOUT" in err
        assert time.monotonic() - started < 5


def test_worker_connect_failure_counts_towards_c() -> None:
    port = str(free_port())
    for argv in (["gearman", "-w"], OURS["gearman -w"]):
        rc, _, err = run([*argv, "-p", port, "-c", "1", "-f", "x"])
        assert rc == 0 and b"GEARMAN_COULD_NOT_CONNECT" in err


def test_worker_pid_file(peers: ServerProc, tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    worker = subprocess.Popen(
        [*OURS["gearman -w"], "-p", str(peers.port), "-i", str(pid_file), "-c", "1", "-f", "pid"]
    )
    try:
        wait_registered(peers.address, "pid")
        assert pid_file.read_text() == f"{worker.pid}\n"
        run(["gearman", "-p", str(peers.port), "-f", "pid", "x"])
        assert worker.wait(10) == 0
        assert not pid_file.exists()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


# -- gearadmin ------------------------------------------------------------------------------


ADMIN_CASES = [
    ["--status"],
    ["--getpid", "--status", "--server-version"],
    ["--cancel-job", "H:x:1"],
    ["--drop-function", "never-created"],
    ["--server-verbose"],
    ["--show-jobs", "--show-unique-jobs", "--priority-status"],
    ["--status", "foo"],
    ["--stat"],
    ["--show"],
    ["--s"],
    ["-x"],
    ["--help", "--status"],
    ["--status", "--status"],
    ["--workers=3"],
    ["--cancel-job"],
    ["--create-function="],
    ["--ssl=1"],
    ["--"],
    ["-"],
    ["--help=3"],
    ["-p"],
    ["-h"],
]


@pytest.mark.parametrize("args", ADMIN_CASES, ids=" ".join)
def test_gearadmin(peers: ServerProc, args: list[str]) -> None:
    compare("gearadmin", ["-p", str(peers.port), *args])


@pytest.mark.parametrize("args", [[], ["--help"], ["-p", "x", "-p", "y"]], ids=" ".join)
def test_gearadmin_usage(args: list[str]) -> None:
    compare("gearadmin", args)


def test_gearadmin_create_and_drop(peers: ServerProc) -> None:
    for name in ("made-1", "made-2"):
        rc, out, err = compare("gearadmin", ["-p", str(peers.port), "--create-function", name])
        assert (rc, out, err) == (0, b"OK\n", b"")
    for tool, name in (("gearadmin", "made-1"), ("ours", "made-2")):
        argv = OURS["gearadmin"] if tool == "ours" else ["gearadmin"]
        assert run([*argv, "-p", str(peers.port), "--drop-function", name]) == (0, b"OK\n", b"")


def test_gearadmin_workers_and_show_jobs(peers: ServerProc) -> None:
    run(["gearman", "-p", str(peers.port), "-b", "-u", "uniq-9", "-f", "queued-only", "x"])
    rc, out, _ = compare("gearadmin", ["-p", str(peers.port), "--show-unique-jobs"])
    assert b"uniq-9\n" in out
    # The workers listing includes the admin connection itself, whose fd may
    # differ between two runs; compare the lines of the other connections.
    theirs = run(["gearadmin", "-p", str(peers.port), "--workers"])[1].splitlines()
    ours = run([*OURS["gearadmin"], "-p", str(peers.port), "--workers"])[1].splitlines()
    assert sorted(ln for ln in theirs if b": " in ln) == sorted(ln for ln in ours if b": " in ln)


@pytest.mark.parametrize(
    "args",
    [
        ["-p", "{dead}", "--status"],
        ["-h", "nonexistent.invalid", "--status"],
        ["-p", "no-such-service", "--status"],
    ],
    ids=" ".join,
)
def test_gearadmin_connection_errors(args: list[str]) -> None:
    rc, _, err = compare("gearadmin", [a.replace("{dead}", str(free_port())) for a in args])
    assert rc == 1 and err.startswith(b"Error: ")


def test_gearadmin_help_lists_every_option() -> None:
    theirs = run(["gearadmin", "--help"])
    ours = run([*OURS["gearadmin"], "--help"])
    assert ours[0] == theirs[0] == 0
    # gearadmin's text byte for byte, then geartrain's own options.
    assert ours[1] == theirs[1].removesuffix(b"\n") + GEARADMIN_EXTRA.encode() + b"\n"
    for option in (
        "--show-failed-jobs",
        "--retry-failed",
        "--delete-failed",
        "--pause",
        "--resume",
        "--show-paused",
        "--result",
        "--strict",
    ):
        assert f"\n  {option} ".encode() in ours[1]


def test_gearman_help_names_strict_mode() -> None:
    theirs = run(["gearman", "-H", "-f", "x"])
    ours = run([*OURS["gearman"], "-H", "-f", "x"])
    assert normalise(ours[1], "gearman") == theirs[1]
    assert ours[1].endswith(GEARMAN_EXTRA.encode()) and b"--strict" in ours[1]


# -- strict mode: the same output as Debian's tools, a failing exit status --------------------


STRICT = {"flag": (["--strict"], {}), "variable": ([], {"GEARTRAIN_STRICT": "1"})}


def strict_compare(tool: str, args: list[str], how: str) -> tuple[int, bytes, bytes]:
    """Run the C tool and ours in strict mode; the output must match; return ours."""
    flags, env = STRICT[how]
    theirs = run([*tool.split(), *args])
    ours = run([*OURS[tool], *flags, *args], env=env)
    assert [normalise(out, tool) for out in ours[1:]] == [normalise(o, tool) for o in theirs[1:]]
    assert theirs[0] == 0
    return ours


@pytest.mark.parametrize("how", STRICT)
@pytest.mark.parametrize("background", [True, False], ids=["-b", "foreground"])
def test_strict_client_fails_when_no_server_answers(background: bool, how: str) -> None:
    flags = ["-b"] if background else []
    rc, _, err = strict_compare("gearman", ["-p", str(free_port()), *flags, "-f", "wc", "x"], how)
    assert rc == 1 and b"GEARMAN_COULD_NOT_CONNECT" in err


@pytest.mark.parametrize("how", STRICT)
@pytest.mark.parametrize("background", [True, False], ids=["-b", "foreground"])
def test_strict_client_fails_when_the_server_refuses(
    server: ServerProc, background: bool, how: str
) -> None:
    with sync.Client(server.address) as client:
        client.submit_background("full", b"first")
    with sync.Admin(server.address) as admin:
        admin.maxqueue("full", 1)
    flags = ["-b"] if background else []
    rc, _, err = strict_compare("gearman", ["-p", str(server.port), *flags, "-f", "full", "x"], how)
    assert rc == 1 and b"QUEUE_ERROR" in err


@pytest.mark.parametrize("how", STRICT)
def test_strict_client_fails_on_timeout(peers: ServerProc, how: str) -> None:
    args = ["-p", str(peers.port), "-t", "300", "-f", "nobody", "x"]
    rc, _, err = strict_compare("gearman", args, how)
    assert rc == 1 and b"GEARMAN_TIMEOUT" in err


def test_strict_client_fails_on_a_worker_exception(
    start_server: Callable[..., ServerProc], tmp_path: Path
) -> None:
    srv = start_server("geartrain", ["--exceptions"])  # WORK_EXCEPTION reaches the tools
    script = tmp_path / "worker.py"
    script.write_text(PEER_WORKER)
    worker = subprocess.Popen([sys.executable, str(script), srv.address])
    try:
        wait_registered(srv.address, "raises")
        rc, _, err = strict_compare("gearman", ["-p", str(srv.port), "-f", "raises", "x"], "flag")
    finally:
        worker.kill()
        worker.wait()
    assert rc == 1 and b"nope" in err


def test_strict_client_succeeds_when_the_job_does(peers: ServerProc) -> None:
    for flags in (["-b"], []):
        rc, out, err = run(
            [*OURS["gearman"], "--strict", "-p", str(peers.port), *flags, "-f", "wc"]
        )
        assert (rc, err) == (0, b"")


@pytest.mark.parametrize("how", STRICT)
def test_strict_admin_fails_on_an_err_answer(peers: ServerProc, how: str) -> None:
    args = ["-p", str(peers.port), "--status", "--cancel-job", "H:nowhere:1"]
    rc, out, err = strict_compare("gearadmin", args, how)
    assert rc == 1 and err == b"Error: UNKNOWN_JOB\r\n" and out.endswith(b".\n")
    assert run([*OURS["gearadmin"], "--strict", "-p", str(peers.port), "--status"])[0] == 0


def test_strict_mode_is_off_with_the_variable_at_0(peers: ServerProc) -> None:
    env = {"GEARTRAIN_STRICT": "0"}
    assert (
        run([*OURS["gearadmin"], "-p", str(peers.port), "--cancel-job", "H:x:1"], env=env)[0] == 0
    )
    assert run([*OURS["gearman"], "-p", str(free_port()), "-b", "-f", "x", "y"], env=env)[0] == 0


# -- TLS (-S) failures, and the one-shot calls ------------------------------------------------


TLS_CALLS = {
    "client -b": ["client", "-b", "-f", "x", "y"],
    "client": ["client", "-f", "x", "y"],
    "admin": ["admin", "--status"],
}


def tls_call(call: str, port: int, host: str = "127.0.0.1", **env: str) -> tuple:
    tool, *args = TLS_CALLS[call]
    return run(
        [sys.executable, "-m", "geartrain", tool, "-S", "-h", host, "-p", str(port), *args], env=env
    )


def one_tls_error(err: bytes, call: str, port: int, host: str = "127.0.0.1") -> str:
    text = err.decode()
    assert text.count("\n") == 1, text
    where = f"Connection to {host}:{port} failed" if call != "admin" else f"connecting to {host}"
    assert f"{where}: TLS: " in text
    return text


@pytest.mark.parametrize("call", TLS_CALLS)
def test_tls_to_an_untrusted_certificate_says_what_to_set(
    tls_server: ServerProc, certificate: tuple[Path, Path], call: str
) -> None:
    rc, out, err = tls_call(call, tls_server.port)
    text = one_tls_error(err, call, tls_server.port)
    assert "not trusted (self-signed certificate)" in text and "GEARMAN_CA_CERTIFICATE" in text
    rc, out, err = tls_call(
        call, tls_server.port, host="localhost", GEARMAN_CA_CERTIFICATE=str(certificate[0])
    )
    text = one_tls_error(err, call, tls_server.port, host="localhost")
    assert "'localhost'" in text and "give -h a name the certificate holds" in text
    if call != "client":  # nobody works on x: a foreground job would wait
        ca = str(certificate[0])
        assert tls_call(call, tls_server.port, GEARMAN_CA_CERTIFICATE=ca)[::2] == (0, b"")


@pytest.mark.parametrize("call", TLS_CALLS)
def test_tls_to_a_plaintext_server_says_to_start_it_with_ssl(server: ServerProc, call: str) -> None:
    rc, out, err = tls_call(call, server.port)
    text = one_tls_error(err, call, server.port)
    assert (
        "no TLS answer from the server" in text and "start it with --ssl, or leave out -S" in text
    )


@pytest.mark.parametrize("call", [["client", "-b", "-f", "x", "y"], ["admin", "--status"]], ids=str)
def test_one_shot_calls_load_no_event_loop(geartrain: ServerProc, call: list[str]) -> None:
    # What keeps `client -b` and `admin` quick (benchmarks/cli_startup.py times them).
    tool, *args = call
    port = str(geartrain.port)
    rc, _, err = run(
        [sys.executable, "-X", "importtime", "-m", "geartrain", tool, "-p", port, *args]
    )
    imported = {line.rpartition("|")[2].strip() for line in err.decode().splitlines()}
    assert rc == 0 and "geartrain.cli.connect" in imported
    assert not imported & {"asyncio", "geartrain.client", "geartrain.admin", "dataclasses"}
