"""`geartrain` command line: one subcommand per tool.

``geartrain server`` takes gearmand's flags, ``geartrain client`` and
``geartrain worker`` those of Debian's ``gearman``, ``geartrain admin`` those of
``gearadmin``, so scripts written for the C tools work by changing the command.
Only the chosen tool's module is imported, so that a one-shot call loads little
more than the codec (``benchmarks/cli_startup.py`` times them).
"""

from __future__ import annotations

import importlib
import os
import sys

from ..__about__ import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

TOOLS = {
    "server": ("server", "main", "the job server (gearmand's flags)"),
    "client": ("gearman", "client_main", "submit jobs (the flags of `gearman`)"),
    "worker": ("gearman", "worker_main", "run a command per job (the flags of `gearman -w`)"),
    "admin": ("admin", "main", "query and manage a server (the flags of `gearadmin`)"),
}
"""Tool name: its module, the function that runs it, what it does."""

USAGE = (
    "usage: geartrain {"
    + ",".join(TOOLS)
    + "} [options]\n\n"
    + "".join(f"  {name:<8} {text}\n" for name, (_, _, text) in TOOLS.items())
)


def main(argv: Sequence[str] | None = None) -> None:
    """Run a tool; exits with the tool's status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        raise SystemExit(0 if args else 2)
    if args[0] in ("-V", "--version"):
        sys.stdout.write(f"geartrain {__version__}\n")
        raise SystemExit(0)
    tool = args[0]
    if tool not in TOOLS:
        sys.stderr.write(f"geartrain: unknown command {tool!r}\n{USAGE}")
        raise SystemExit(2)
    module, function, _ = TOOLS[tool]
    run = getattr(importlib.import_module(f".{module}", __name__), function)
    status = run(args[1:])
    if "asyncio" in sys.modules:  # an event loop ran: the usual exit
        raise SystemExit(status)
    # A one-shot call over a blocking socket (client -b, admin) has closed all it
    # opened; tearing down the interpreter's modules would take 3 ms more.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
