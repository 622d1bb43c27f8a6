"""``geartrain admin``: Debian's ``gearadmin``, on the asyncio admin client.

The options, their parsing (Boost.Program_options: ``--opt=value`` or
``--opt value``, unambiguous prefixes, ``-h``/``-p`` short forms), the help
text, the error messages and the exit codes are gearadmin 1.1.20's.  Like it,
the operations run in the reverse of the order below (gearadmin pushes them
on a stack), and each answer is printed as received: ``OK <x>`` without the
``OK``, a bare ``OK`` as ``OK``, an ``ERR <x>`` as ``Error: <x>`` on stderr
(the exit status stays 0), anything else raw.

geartrain's own options for the failed-job set, ``--show-failed-jobs``,
``--retry-failed HANDLE`` and ``--delete-failed HANDLE`` (``all`` or ``"all
FUNCTION"`` for many), must be spelled out in full, so that every abbreviation
gearadmin accepts keeps its meaning, and are left out of the help text, which
is gearadmin's.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from dataclasses import dataclass

from ..admin import Admin
from ..connection import Address
from ..errors import ConnectionLost
from .gearman_args import tls_context

__all__ = ["DESCRIPTION", "main"]

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
EXACT = {"show-failed-jobs": False, "retry-failed": True, "delete-failed": True}
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
)


class UsageError(Exception):
    """A command line Boost.Program_options would reject."""


@dataclass
class _Parsed:
    values: dict[str, str | None]


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


def parse(argv: list[str]) -> _Parsed:
    """Parse gearadmin's options; positional words are ignored, as there."""
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
    return _Parsed(values)


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
    try:
        parsed = parse(argv)
    except UsageError as exc:
        sys.stdout.write(f"{NAME} : {exc}\n\n{DESCRIPTION}\n")
        return 1
    values = parsed.values
    if "help" in values:
        sys.stdout.write(DESCRIPTION + "\n")
        return 0
    lines = [
        command + (values[option] or "")
        for option, command in reversed(OPERATIONS)
        if option in values
    ]
    if not lines:
        sys.stdout.write(f"No option execution operation given.\n\n{DESCRIPTION}\n")
        return 1
    host = values.get("host") or "localhost"
    port = values.get("port") or "4730"
    return asyncio.run(_run(host, port, lines, tls_context() if "ssl" in values else None))


async def _run(host: str, port_text: str, lines: list[str], tls: ssl.SSLContext | None) -> int:
    try:
        port = int(port_text) if port_text.isdigit() else socket.getservbyname(port_text, "tcp")
    except OSError:
        reason = "Servname not supported for ai_socktype"
        return _fail(f"Failed to connect on {host}:{port_text} with {reason}")
    admin = Admin(Address(host, port), ssl=tls)
    try:
        for line in lines:
            _finish(await admin.command(line))
    except ConnectionLost as exc:
        cause = exc.__cause__
        if isinstance(cause, socket.gaierror):
            return _fail(f"Failed to connect on {host}:{port_text} with {cause.strerror}")
        if str(exc).startswith("connect to"):
            return _fail(f"Error connecting to {host}.\n")
        return _fail(f"Socket was shutdown while reading from {host}")
    finally:
        await admin.close()
    return 0


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


def _fail(message: str) -> int:
    sys.stdout.flush()
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    return 1
