"""What ``geartrain client`` and ``worker`` print, in the words and buffering of ``gearman``.

WORK_DATA and WORK_COMPLETE payloads go raw to stdout; WORK_WARNING and
WORK_EXCEPTION to stderr; WORK_STATUS prints ``N% Complete``; WORK_FAIL
prints ``Job failed`` on stderr and makes the exit status 1.  Even the
ordering matches: the C tool writes payloads with ``write(2)`` but ``Task
created`` and ``% Complete`` lines with ``printf``, so when stdout is a pipe
those lines come out at exit (see :class:`CStdout`).  Errors go to stderr and,
as with the C tool, do not change the exit status, except in strict mode.
"""

from __future__ import annotations

import os
import time

from ..errors import ServerError
from .connect import tls_problem

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from .gearman_args import GearmanArgs

__all__ = ["CStdout", "ClientOutput", "describe", "print_error", "write_all"]


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


class ClientOutput:
    """The C tool's client callbacks, and the exit status they add up to."""

    def __init__(self, args: GearmanArgs) -> None:
        self.args = args
        self.stdout = CStdout()
        self.failed = False
        self.last_activity = time.monotonic()

    @property
    def exit_status(self) -> int:
        """The exit status: 1 after a failed job (or, in strict mode, any error)."""
        return 1 if self.failed else 0

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def _prefix_out(self, function: str, flush: bool) -> None:
        if self.args.prefix:
            self.stdout.printf(f"{function}: ")
            if flush:
                self.stdout.fflush()

    def created(self, handle: bytes | None) -> None:
        if self.args.verbose and handle is not None:
            self.stdout.printf(f"Task created: {handle.decode(errors='replace')}\n")

    def data(self, function: str, data: bytes) -> None:
        self.touch()
        self._prefix_out(function, flush=True)
        self.stdout.write(data)

    def warning(self, function: str, data: bytes) -> None:
        self.touch()
        if self.args.prefix:
            write_all(2, f"{function}: ".encode())
        write_all(2, data)

    def exception(self, function: str, data: bytes) -> None:
        """WORK_EXCEPTION: printed as a warning; a failure only in strict mode."""
        self.warning(function, data)
        self.failed = self.failed or self.args.strict

    def status(self, function: str, numerator: int, denominator: int) -> None:
        self.touch()
        self._prefix_out(function, flush=False)
        if denominator:  # the C tool divides by zero here
            percent = (numerator * 100) % 2**32 // denominator
            self.stdout.printf(f"{percent}% Complete\n")

    def fail(self, function: str) -> None:
        if self.args.prefix:
            write_all(2, f"{function}: ".encode())
        write_all(2, b"Job failed\n")
        self.failed = True

    def error(self, message: str) -> None:
        """A submission that did not happen (refused, timed out, no server)."""
        print_error(message)
        self.failed = self.failed or self.args.strict


# ERROR codes a server may answer a submission with that libgearman knows by
# name (its error_code.gperf); any other it reports as GEARMAN_SERVER_ERROR.
_LIBGEARMAN_CODES = frozenset(
    {
        "ARGUMENT_TOO_LARGE",
        "INVALID_ARGUMENT",
        "INVALID_COMMAND",
        "INVALID_FUNCTION_NAME",
        "INVALID_PACKET",
        "JOB_EXISTS",
        "JOB_NOT_FOUND",
        "JOB_QUEUE_FULL",
        "QUEUE_ERROR",
        "SERVER_ERROR",
        "TOO_MANY_ARGS",
        "UNKNOWN_OPTION",
    }
)


def describe(exc: Exception, args: GearmanArgs) -> str:
    """libgearman's words for a submission that failed: refused, or no connection
    (with ``-S``, followed by what went wrong with TLS and what to do)."""
    if isinstance(exc, ServerError):
        # libgearman's wording for an ERROR packet answering a submission.
        kind = exc.code if exc.code in _LIBGEARMAN_CODES else "SERVER_ERROR"
        return f"gearman_client_run_tasks : _client_run_tasks(GEARMAN_{kind}) {exc.code}:{exc.text}"
    text = (
        "gearman_client_run_tasks : flush(GEARMAN_COULD_NOT_CONNECT) "
        f"Connection to {args.servers()[-1]} failed"
    )
    problem = tls_problem(exc) if args.use_ssl else None
    return f"{text}: {problem}" if problem else text
