"""The workloads of ``geartrain client``: one job per function for each, as ``gearman`` reads them.

The arguments after the options, one workload each; else nothing (``-s``); else
standard input, whole or one workload per line (``-n``, and ``-N`` without
the newline).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator

    from .gearman_args import GearmanArgs

__all__ = ["workloads"]


def workloads(args: GearmanArgs) -> Iterator[bytes]:
    """Each workload in turn (standard input is read as they are taken)."""
    if args.arguments:
        for arg in args.arguments:
            yield os.fsencode(arg)
    elif args.suppress_input:
        yield b""
    elif args.job_per_newline:
        for line in sys.stdin.buffer:
            yield line[:-1] if args.strip_newline and line.endswith(b"\n") else line
    else:
        yield sys.stdin.buffer.read()
