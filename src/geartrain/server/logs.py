"""Logging for the server: gearmand's verbosity names, its log-file flag, SIGHUP reopen, syslog.

asyncio's own logger (errors the event loop reports, such as "Fatal error on
transport") goes to the same place as the server's, so ``-d -l FILE`` keeps them.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Hashable
from logging.handlers import SysLogHandler
from typing import TextIO

__all__ = ["NOTICE", "LogTarget", "LogThrottle", "add_syslog", "level_for", "setup_logging"]

NOTICE = 25
"""gearmand's NOTICE sits between WARNING and INFO; Python has no such level."""
logging.addLevelName(NOTICE, "NOTICE")

_LEVELS = {
    "FATAL": logging.CRITICAL,
    "ALERT": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "NOTICE": NOTICE,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_LOGGERS = ("geartrain", "asyncio")
"""The loggers the server's log gathers: its own and the event loop's."""


def level_for(verbose: str) -> int:
    """The logging level for a gearmand --verbose name.

    Raises:
        ValueError: not one of gearmand's names.
    """
    try:
        return _LEVELS[verbose.upper()]
    except KeyError:
        raise ValueError(f"unknown verbose level {verbose!r}") from None


class LogTarget:
    """Where the log goes (``-l``): ``stderr``, ``none`` or a file reopened on SIGHUP."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.handler: logging.Handler
        if target == "none":
            self.handler = logging.NullHandler()
        elif target == "stderr":
            self.handler = logging.StreamHandler(sys.stderr)
        else:
            # WatchedFileHandler would reopen on rotation too, but SIGHUP is the
            # contract logrotate configs for gearmand rely on.
            self.handler = logging.FileHandler(target, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter(FORMAT))

    def reopen(self) -> None:
        """SIGHUP: reopen the log file so a rotated file is let go."""
        if isinstance(self.handler, logging.FileHandler):
            self.handler.acquire()
            try:
                old: TextIO | None = self.handler.stream
                self.handler.stream = self.handler._open()
                if old is not None:
                    old.close()
            finally:
                self.handler.release()


def setup_logging(target: str, verbose: str) -> LogTarget:
    """Send the ``geartrain`` loggers to ``target`` at gearmand verbosity ``verbose``."""
    log_target = LogTarget(target)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.addHandler(log_target.handler)
        logger.propagate = False
    logging.getLogger("geartrain").setLevel(level_for(verbose))
    return log_target


class _Syslog(SysLogHandler):
    """Best effort, as C's syslog(3): a syslog daemon that goes away costs lines, not
    a traceback on stderr for each one."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def add_syslog(address: str = "/dev/log") -> bool:
    """``--syslog``: also log to the local syslog daemon, if one listens at ``address``.

    Without one (a container, say) the server says so once and logs as before."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
    except OSError as error:
        logging.getLogger("geartrain.server").warning(
            "--syslog: no syslog daemon at %s (%s); logging only to the log file",
            address,
            error.strerror or error,
        )
        return False
    handler = _Syslog(address=address)
    handler.ident = "geartrain: "
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in _LOGGERS:
        logging.getLogger(name).addHandler(handler)
    return True


class LogThrottle:
    """At most one log line per key every ``interval`` seconds, so that a peer
    repeating a refused request in a loop cannot flood the log."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last: dict[Hashable, float] = {}

    def due(self, key: Hashable) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        if len(self._last) >= 65536:  # bounded, whatever peers send
            self._last.clear()
        self._last[key] = now
        return True
