"""The command line of Debian's ``gearman`` tool, shared by ``geartrain client`` and ``worker``.

Flags, defaults, the usage text and its exit codes follow ``bin/arguments.cc``
and ``bin/gearman.cc`` of gearmand 1.1: getopt string
``bc:f:h:HILnNp:Pst:u:vwi:dS``, GNU argument permutation, numbers read with
``atoi`` (so garbage is 0), and any bad option reported as ``-?``.  One
option of geartrain's own, ``--strict`` (see :mod:`.strict`), must be a word
of its own.
"""

from __future__ import annotations

import contextlib
import os
import sys

from ..address import DEFAULT_PORT, Address, parse_servers
from ..priority import Priority
from . import strict
from .connect import tls_context

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator
    from typing import TextIO

__all__ = [
    "GearmanArgs",
    "atoi",
    "daemonize",
    "parse",
    "pid_file",
    "usage",
]

OPTSTRING = "bc:f:h:HILnNp:Pst:u:vwi:dS"


def atoi(text: str) -> int:
    """C's ``atoi``: optional blanks and sign, then digits; anything else is 0."""
    text = text.lstrip(" \t\n\r\f\v")
    sign = 1
    if text[:1] in "+-" and text:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    digits = ""
    for ch in text:
        if not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else 0


class GearmanArgs:
    """What ``gearman`` was asked to do (the class attributes are the C tool's defaults)."""

    host: str | None = None
    port = 0
    count = 0
    unique: str | None = None
    job_per_newline = False
    strip_newline = False
    suppress_input = False
    verbose = False
    prefix = False
    background = False
    daemon = False
    usage = False
    bad_option = False
    use_ssl = False
    strict = False
    priority = Priority.NORMAL
    timeout = -1
    """Milliseconds; -1 waits forever."""
    pid_file = ""

    def __init__(self, worker: bool = False) -> None:
        self.worker = worker
        self.functions: list[str] = []
        self.arguments: list[str] = []

    @property
    def arg_error(self) -> str | None:
        if not self.functions:
            return "No Functions were provided"
        return "-?" if self.bad_option else None

    @property
    def is_error(self) -> bool:
        return self.arg_error is not None

    def servers(self) -> list[Address]:
        """``GEARMAN_SERVER`` (a comma-separated list) if set, else ``-h``/``-p``."""
        env = os.environ.get("GEARMAN_SERVER")
        if env:
            return parse_servers(env)
        port = self.port % 65536 or DEFAULT_PORT  # in_port_t, 0 is the default
        return [Address(self.host or "localhost", port)]

    @property
    def timeout_seconds(self) -> float | None:
        return None if self.timeout < 0 else self.timeout / 1000

    def ssl_context(self) -> ssl.SSLContext | None:
        return tls_context() if self.use_ssl else None


def _options(argv: list[str]) -> Iterator[tuple[str, str | None]]:
    """GNU getopt over OPTSTRING: yields (flag, argument); a bad flag is ``?``."""
    takes_arg = {c for i, c in enumerate(OPTSTRING) if OPTSTRING[i + 1 : i + 2] == ":"}
    flags = set(OPTSTRING) - {":"}
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            for rest in argv[i:]:
                yield "", rest
            return
        if word == strict.FLAG:
            yield word, None
            continue
        if not word.startswith("-") or word == "-":
            yield "", word  # permuted: operands may come between options
            continue
        j = 1
        while j < len(word):
            flag = word[j]
            j += 1
            if flag not in flags:
                yield "?", None
            elif flag in takes_arg:
                if j < len(word):
                    yield flag, word[j:]
                elif i < len(argv):
                    yield flag, argv[i]
                    i += 1
                else:
                    yield "?", None
                break
            else:
                yield flag, None


_SWITCHES = {
    "b": "background",
    "d": "daemon",
    "H": "usage",
    "n": "job_per_newline",
    "P": "prefix",
    "s": "suppress_input",
    "w": "worker",
    "v": "verbose",
    "S": "use_ssl",
}


def parse(argv: list[str], *, worker: bool = False) -> GearmanArgs:
    """Parse ``gearman``'s arguments (``worker`` presets ``-w``)."""
    args = GearmanArgs(worker=worker)
    for flag, value in _options(argv):
        if flag == "":
            assert value is not None
            args.arguments.append(value)
        elif flag in _SWITCHES:
            setattr(args, _SWITCHES[flag], True)
        elif flag == "N":
            args.job_per_newline = args.strip_newline = True
        elif flag == "I":
            args.priority = Priority.HIGH
        elif flag == "L":
            args.priority = Priority.LOW
        elif flag == "?":
            args.bad_option = True
        elif flag == strict.FLAG:
            args.strict = True
        elif value is not None:
            _value(args, flag, value)
    args.strict = strict.requested(args.strict)
    return args


def _value(args: GearmanArgs, flag: str, value: str) -> None:
    if flag == "f":
        args.functions.append(value)
    elif flag == "h":
        args.host = value
    elif flag == "p":
        args.port = atoi(value)
    elif flag == "c":
        args.count = atoi(value) % 2**32
    elif flag == "t":
        args.timeout = atoi(value)
    elif flag == "u":
        args.unique = value
    elif flag == "i":
        args.pid_file = value


USAGE_EXTRA = (
    "\ngeartrain options:\n"
    f"\t{strict.FLAG}      - Exit 1 when a job fails or times out, or the server refuses it\n"
    f"\t                or cannot be reached (also {strict.ENVIRONMENT}=1)\n"
)
"""What ``usage`` adds to gearman's text: geartrain's own option."""


def usage(args: GearmanArgs, name: str) -> None:
    """Print gearman's help: on stderr after a usage error, else on stdout."""
    stream: TextIO = sys.stderr if args.is_error else sys.stdout

    def tf(flag: bool) -> str:
        return "true" if flag else "false"

    stream.write(
        f"\n{name}\tError in usage({args.arg_error or '(null)'}).\n\n"
        f"Client mode: {name} [options] [<data>]\n"
        f"Worker mode: {name} -w [options] [<command> [<args> ...]]\n"
        "\nCommon options to both client and worker modes.\n"
        "\t-f <function> - Function name to use for jobs (can give many)\n"
        "\t-h <host>     - Job server host\n"
        "\t-H            - Print this help menu\n"
        f"\t-v            - Print diagnostic information to stdout({tf(args.verbose)})\n"
        "\t-p <port>     - Job server port\n"
        "\t-t <timeout>  - Timeout in milliseconds\n"
        "\t-i <pidfile>  - Create a pidfile for the process\n"
        "\t-S            - Enable SSL connections\n"
        "\nClient options:\n"
        f"\t-b            - Run jobs in the background({tf(args.background)})\n"
        "\t-I            - Run jobs as high priority\n"
        "\t-L            - Run jobs as low priority\n"
        f"\t-n            - Run one job per line({tf(args.job_per_newline)})\n"
        "\t-N            - Same as -n, but strip off the newline"
        f"({tf(args.strip_newline)})\n"
        "\t-P            - Prefix all output lines with functions names\n"
        "\t-s            - Send job without reading from standard input\n"
        "\t-u <unique>   - Unique key to use for job\n"
        "\nWorker options:\n"
        "\t-c <count>    - Number of jobs for worker to run before exiting\n"
        f"\t-n            - Send data packet for each line({tf(args.job_per_newline)})\n"
        "\t-N            - Same as -n, but strip off the newline"
        f"({tf(args.strip_newline)})\n"
        f"\t-w            - Run in worker mode({tf(args.worker)})\n"
        f"{USAGE_EXTRA}"
    )
    stream.flush()


def daemonize() -> bool:
    """``-d``: fork into the background; True in the parent (which should exit 0)."""
    if os.fork() > 0:
        return True
    os.setsid()
    fd = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    os.close(fd)
    return False


@contextlib.contextmanager
def pid_file(path: str) -> Iterator[None]:
    """``-i FILE``: write our pid to FILE for the life of the process.

    Raises:
        OSError: the file cannot be written.
    """
    if not path:
        yield
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    with open(path, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
