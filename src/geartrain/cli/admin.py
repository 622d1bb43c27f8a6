"""``geartrain admin``: Debian's ``gearadmin``, over a blocking socket.

The options, their parsing (Boost.Program_options: ``--opt=value`` or
``--opt value``, unambiguous prefixes, ``-h``/``-p`` short forms), the help
text, the error messages and the exit codes are gearadmin 1.1.20's.  Like it,
the operations run in the reverse of the order below (gearadmin pushes them
on a stack), and each answer is printed as received: ``OK <x>`` without the
``OK``, a bare ``OK`` as ``OK``, an ``ERR <x>`` as ``Error: <x>`` on stderr
(the exit status stays 0, or is 1 in strict mode), anything else raw.

geartrain's own options, ``--show-failed-jobs``, ``--retry-failed HANDLE`` and
``--delete-failed HANDLE`` for the failed-job set (``all`` or ``"all
FUNCTION"`` for many), ``--pause F``, ``--resume F`` and ``--show-paused`` for
paused functions, ``--result HANDLE`` for a background job's kept result
(printed as ``STATUS BASE64``) and ``--strict``, must be spelled out in full, so that
every abbreviation gearadmin accepts keeps its meaning; the help text lists
them after gearadmin's, which is unchanged.
"""

from __future__ import annotations

import socket
import sys

from ..address import DEFAULT_CONNECT_TIMEOUT, DEFAULT_IO_TIMEOUT
from ..admin_answers import answer_end, is_listing
from . import strict
from .connect import connect, tls_context, tls_problem

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    import ssl
    from typing import NoReturn

__all__ = ["DESCRIPTION", "EXTRA", "main"]

NAME = "geartrain admin"

DESCRIPTION = (
    "Options:\n"
    "  --help                         Options related to the program.\n"
    "  -h [ --host ] arg (=localhost) Connect to the host\n"
    "  -p [ --port ] arg (=4730)      Port number or service to use for connection\n"
    "  --server-version               Fetch the version number for the server.\n"
    "  --server-verbose               Fetch the verbose setting for the server.\n"
    "  --create-function arg          Create the function from the server.\n"
    "  --cancel-job arg               Remove a given job from the server's queue\n"
    "  --drop-function arg            Drop the function from the server.\n"
    "  --show-unique-jobs             Show unique IDs of jobs on the server.\n"
    "  --show-jobs                    Show all jobs on the server.\n"
    "  --getpid                       Get Process ID for the server.\n"
    "  --status                       Status for the server.\n"
    "  --priority-status              Queued jobs status by priority.\n"
    "  --workers                      Workers for the server.\n"
    "  -S [ --ssl ]                   Enable SSL connections.\n"
)
"""gearadmin's help text, byte for byte."""

EXTRA = "\ngeartrain options (spelled out in full):\n" + "".join(
    f"  {option:<31}{text}\n"
    for option, text in (
        ("--show-failed-jobs", "Show the failed-job set."),
        ("--retry-failed arg", 'Run failed jobs again: a handle, all, "all FUNCTION".'),
        ("--delete-failed arg", 'Forget failed jobs: a handle, all, "all FUNCTION".'),
        ("--pause arg", "Pause a function: its jobs stay queued, no worker gets one."),
        ("--resume arg", "Resume a paused function."),
        ("--show-paused", "Show the paused functions."),
        ("--result arg", "A background job's kept result: STATUS [BASE64 DATA]."),
        (strict.FLAG, f"Exit 1 on ERR answers (or {strict.ENVIRONMENT}=1)."),
    )
)
"""geartrain's options, listed after gearadmin's."""

# Long name -> takes an argument.
OPTIONS = {
    "help": False,
    "host": True,
    "port": True,
    "server-version": False,
    "server-verbose": False,
    "create-function": True,
    "cancel-job": True,
    "drop-function": True,
    "show-unique-jobs": False,
    "show-jobs": False,
    "getpid": False,
    "status": False,
    "priority-status": False,
    "workers": False,
    "ssl": False,
}
SHORT = {"h": "host", "p": "port", "S": "ssl"}
EXACT = {
    "show-failed-jobs": False,
    "retry-failed": True,
    "delete-failed": True,
    "pause": True,
    "resume": True,
    "show-paused": False,
    "result": True,
    strict.FLAG.removeprefix("--"): False,
}
"""geartrain's options: never matched by an abbreviation."""
OPTIONS.update(EXACT)

# gearadmin's push order; it runs them last first.
OPERATIONS = (
    ("status", "status"),
    ("priority-status", "prioritystatus"),
    ("workers", "workers"),
    ("server-version", "version"),
    ("server-verbose", "verbose"),
    ("cancel-job", "cancel job "),
    ("show-unique-jobs", "show unique jobs"),
    ("show-jobs", "show jobs"),
    ("drop-function", "drop function "),
    ("create-function", "create function "),
    ("getpid", "getpid"),
    ("show-failed-jobs", "show failed jobs"),
    ("retry-failed", "retry failed "),
    ("delete-failed", "delete failed "),
    ("show-paused", "paused"),
    ("resume", "resume "),
    ("pause", "pause "),
    ("result", "result "),
)


class UsageError(Exception):
    """A command line Boost.Program_options would reject."""


def _long(name: str) -> str:
    if name in OPTIONS:
        return name
    matches = sorted(opt for opt in OPTIONS if opt.startswith(name) and opt not in EXACT)
    if not matches:
        raise UsageError(f"unrecognised option '--{name}'")
    if len(matches) > 1:
        quoted = [f"'--{m}'" for m in matches]
        listed = ", ".join(quoted[:-1]) + ", and " + quoted[-1]
        raise UsageError(f"option '--{name}' is ambiguous and matches {listed}")
    return matches[0]


def parse(argv: list[str]) -> dict[str, str | None]:
    """Parse gearadmin's options: long name -> value (None for a switch);
    positional words are ignored, as there."""
    values: dict[str, str | None] = {}

    def store(name: str, value: str | None) -> None:
        if name in values:
            raise UsageError(f"option '--{name}' cannot be specified more than once")
        values[name] = value

    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            break
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            name = _long(name)
            if eq and not value:
                raise UsageError(
                    f"the argument for option '--{name}' should follow immediately after "
                    "the equal sign"
                )
            if not OPTIONS[name]:
                if eq:
                    raise UsageError(f"option '--{name}' does not take any arguments")
                store(name, None)
            elif eq:
                store(name, value)
            elif i < len(argv):
                store(name, argv[i])
                i += 1
            else:
                raise UsageError(f"the required argument for option '--{name}' is missing")
        elif word.startswith("-") and len(word) > 1:
            i = _short(word, argv, i, store)
    return values


def _short(word: str, argv: list[str], i: int, store: object) -> int:
    assert callable(store)
    j = 1
    while j < len(word):
        flag = word[j]
        j += 1
        name = SHORT.get(flag)
        if name is None:
            raise UsageError(f"unrecognised option '-{flag}'")
        if not OPTIONS[name]:
            store(name, None)
            continue
        if j < len(word):
            store(name, word[j:])
        elif i < len(argv):
            store(name, argv[i])
            i += 1
        else:
            raise UsageError(f"the required argument for option '--{name}' is missing")
        break
    return i


def main(argv: list[str]) -> int:
    """Run gearadmin; returns its exit status."""
    help_text = DESCRIPTION + EXTRA
    try:
        values = parse(argv)
    except UsageError as exc:
        sys.stdout.write(f"{NAME} : {exc}\n\n{help_text}\n")
        return 1
    if "help" in values:
        sys.stdout.write(help_text + "\n")
        return 0
    lines = [
        command + (values[option] or "")
        for option, command in reversed(OPERATIONS)
        if option in values
    ]
    if not lines:
        sys.stdout.write(f"No option execution operation given.\n\n{help_text}\n")
        return 1
    host = values.get("host") or "localhost"
    port = values.get("port") or "4730"
    tls = tls_context() if "ssl" in values else None
    errors = _run(host, port, lines, tls)
    return 1 if errors and strict.requested(strict.FLAG.removeprefix("--") in values) else 0


def _run(host: str, port_text: str, lines: list[str], tls: ssl.SSLContext | None) -> int:
    """Send each line and print its answer, as gearadmin does; returns the number of
    errors (ERR answers).

    Raises:
        SystemExit: status 1, as gearadmin, after a connection error.
    """
    try:
        port = int(port_text) if port_text.isdigit() else socket.getservbyname(port_text, "tcp")
    except OSError:
        reason = "Servname not supported for ai_socktype"
        _fail(f"Failed to connect on {host}:{port_text} with {reason}")
    try:
        sock = connect(host, port, tls, DEFAULT_CONNECT_TIMEOUT)
    except socket.gaierror as exc:
        _fail(f"Failed to connect on {host}:{port_text} with {exc.strerror}")
    except OSError as exc:
        why = _tls_why(exc, tls)
        _fail(f"Error connecting to {host}{why}" if why else f"Error connecting to {host}.\n")
    errors = 0
    with sock:
        sock.settimeout(DEFAULT_IO_TIMEOUT)
        for line in lines:
            try:
                answer = _command(sock, line.encode())
            except OSError as exc:
                _fail(f"Socket was shutdown while reading from {host}{_tls_why(exc, tls)}")
            errors += answer.startswith(b"ERR")
            _finish(answer)
    return errors


def _tls_why(error: OSError, tls: ssl.SSLContext | None) -> str:
    """With ``-S``, what went wrong with TLS and what to do, as ``": ..."``; else ""."""
    problem = tls_problem(error) if tls else None
    return f": {problem}" if problem else ""


def _command(sock: socket.socket, line: bytes) -> bytes:
    """Send one command line; return its raw answer, line endings included.

    Raises:
        OSError: the connection failed, closed or timed out first.
    """
    sock.sendall(line + b"\r\n")
    listing = is_listing(line)
    answer = bytearray()
    while (end := answer_end(answer, listing)) < 0:
        data = sock.recv(65536)
        if not data:
            raise ConnectionResetError("the server closed the connection")
        answer += data
    return bytes(answer[:end])


def _finish(answer: bytes) -> None:
    """Print one answer as gearadmin's ``Finish::call`` does."""
    if not answer:
        return
    if answer.startswith(b"OK\r"):
        _out(b"OK\n")
    elif answer.startswith(b"OK "):
        _out(answer[3:])
    elif answer.startswith(b"ERR "):
        sys.stdout.flush()
        sys.stderr.buffer.write(b"Error: " + answer[4:])
        sys.stderr.flush()
    else:
        _out(answer)


def _out(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)


def _fail(message: str) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(1)
