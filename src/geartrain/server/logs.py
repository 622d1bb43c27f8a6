"""Logging for the server: gearmand's verbosity names, its log-file flag, SIGHUP reopen."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Hashable
from typing import TextIO

__all__ = ["NOTICE", "LogTarget", "LogThrottle", "level_for", "setup_logging"]

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
    root = logging.getLogger("geartrain")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(log_target.handler)
    root.setLevel(level_for(verbose))
    root.propagate = False
    return log_target


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
