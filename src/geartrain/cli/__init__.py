"""`geartrain` command line: one subcommand per tool.

``geartrain server`` takes gearmand's flags, ``geartrain client`` and
``geartrain worker`` those of Debian's ``gearman``, ``geartrain admin`` those of
``gearadmin``, so scripts written for the C tools work by changing the command.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from ..__about__ import __version__

TOOLS = {
    "server": "the job server (gearmand's flags)",
    "client": "submit jobs (the flags of `gearman`)",
    "worker": "run a command per job (the flags of `gearman -w`)",
    "admin": "query and manage a server (the flags of `gearadmin`)",
}

USAGE = (
    "usage: geartrain {"
    + ",".join(TOOLS)
    + "} [options]\n\n"
    + "".join(f"  {name:<8} {text}\n" for name, text in TOOLS.items())
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
    module = importlib.import_module(f".{tool}", __name__)
    raise SystemExit(module.main(args[1:]))
