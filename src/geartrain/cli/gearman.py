"""``geartrain client`` and ``geartrain worker``: Debian's ``gearman``, whose ``-w`` picks the mode.

The usage checks, ``-d`` and ``-i`` are the same in both modes; then
background submissions to one server take a blocking socket
(:mod:`.submit_background`), other submissions the asyncio client
(:mod:`.client`), and worker mode the asyncio worker (:mod:`.worker`).
Each is imported only when chosen: ``client -b`` in a shell loop starts
without asyncio and the libraries.
"""

from __future__ import annotations

from .gearman_args import GearmanArgs, daemonize, parse, pid_file, usage
from .output import print_error

__all__ = ["client_main", "run", "worker_main"]


def client_main(argv: list[str]) -> int:
    """``geartrain client``: ``gearman``'s client mode (``-w`` switches to worker mode)."""
    return run(parse(argv), "geartrain client")


def worker_main(argv: list[str]) -> int:
    """``geartrain worker``: ``gearman -w``."""
    return run(parse(argv, worker=True), "geartrain worker")


def run(args: GearmanArgs, name: str) -> int:
    """Usage checks, ``-d``, ``-i``, then client or worker mode; returns the exit status."""
    if args.usage:
        usage(args, name)
        return 0
    if args.is_error:
        usage(args, name)
        return 1
    if args.daemon and daemonize():
        return 0
    try:
        with pid_file(args.pid_file):
            return _mode(args)
    except OSError as exc:
        print_error(f"Could not open pid file for writing: {args.pid_file} ({exc.strerror})")
        return 1


def _mode(args: GearmanArgs) -> int:
    from . import submit_background

    if not args.worker and submit_background.applies(args):
        return submit_background.run(args)
    import logging

    # The tools report errors in the C tools' words; the libraries' own
    # warnings (a resubmitted job, a failed job's traceback) stay quiet.
    logging.getLogger("geartrain").setLevel(logging.ERROR)
    if args.worker:
        from .worker import work

        return work(args)
    from .client import run_client

    return run_client(args)
