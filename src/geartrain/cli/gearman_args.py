"""The command line of Debian's ``gearman`` tool, shared by ``geartrain client`` and ``worker``.

Flags, defaults, the usage text and its exit codes follow ``bin/arguments.cc``
and ``bin/gearman.cc`` of gearmand 1.1: getopt string
``bc:f:h:HILnNp:Pst:u:vwi:dS``, GNU argument permutation, numbers read with
``atoi`` (so garbage is 0), and any bad option reported as ``-?``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import ssl

from ..address import DEFAULT_PORT, Address, parse_servers
from ..priority import Priority

__all__ = [
    "CStdout",
    "GearmanArgs",
    "atoi",
    "parse",
    "pid_file",
    "print_error",
    "tls_context",
    "usage",
    "write_all",
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


@dataclass
class GearmanArgs:
    """What ``gearman`` was asked to do."""

    functions: list[str] = field(default_factory=list)
    host: str | None = None
    port: int = 0
    count: int = 0
    unique: str | None = None
    job_per_newline: bool = False
    strip_newline: bool = False
    worker: bool = False
    suppress_input: bool = False
    verbose: bool = False
    prefix: bool = False
    background: bool = False
    daemon: bool = False
    usage: bool = False
    bad_option: bool = False
    use_ssl: bool = False
    priority: Priority = Priority.NORMAL
    timeout: int = -1
    """Milliseconds; -1 waits forever."""
    pid_file: str = ""
    arguments: list[str] = field(default_factory=list)

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


def tls_context() -> ssl.SSLContext:
    """The TLS context of ``-S``: verify the server against the system CAs or
    ``GEARMAN_CA_CERTIFICATE``; present ``GEARMAN_CLIENT_PEM`` (and
    ``GEARMAN_CLIENT_KEY``) if set.  Debian's tools are built without TLS and
    ignore ``-S``; these use it.
    """
    import ssl  # only for --ssl: loading it costs start-up time

    context = ssl.create_default_context(cafile=os.environ.get("GEARMAN_CA_CERTIFICATE"))
    cert = os.environ.get("GEARMAN_CLIENT_PEM")
    if cert:
        context.load_cert_chain(cert, os.environ.get("GEARMAN_CLIENT_KEY"))
    return context


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
        elif value is not None:
            _value(args, flag, value)
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
    )
    stream.flush()


def print_error(message: str) -> None:
    """An error line as the C tool prints it (unbuffered): ``gearman: <message>``."""
    write_all(2, f"gearman: {message}\n".encode(errors="replace"))


def write_all(fd: int, data: bytes) -> None:
    """``write(2)`` until everything is out (pipes may take less at once)."""
    view = memoryview(data)
    while view:
        try:
            sent = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[sent:]


class CStdout:
    """C's ``stdout`` as the gearman tool sees it.

    The tool mixes ``printf`` (buffered: by line on a terminal, in 4 KiB
    blocks otherwise) with raw ``write(2)`` of payloads, so when stdout is a
    pipe its ``Task created`` and ``% Complete`` lines come out after the
    payloads, at exit.  Python's own ``sys.stdout`` buffering depends on the
    environment (``PYTHONUNBUFFERED``), so it is emulated here.
    """

    BUFSIZ = 4096  # glibc's buffer for a pipe or a file (st_blksize)

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self.buffer = bytearray()
        try:
            self.line_buffered = os.isatty(fd)
        except OSError:
            self.line_buffered = False

    def printf(self, text: str) -> None:
        """Buffered output (``printf``/``fprintf(stdout, ...)``)."""
        self.buffer += text.encode(errors="replace")
        if (self.line_buffered and "\n" in text) or len(self.buffer) >= self.BUFSIZ:
            self.fflush()

    def fflush(self) -> None:
        data, self.buffer = bytes(self.buffer), bytearray()
        if data:
            write_all(self.fd, data)

    def write(self, data: bytes) -> None:
        """Unbuffered output (``write(fileno(stdout), ...)``)."""
        write_all(self.fd, data)


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
