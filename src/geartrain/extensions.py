"""geartrain's opt-in extensions of the wire protocol, negotiated with OPTION_REQ.

gearmand answers ``ERROR UNKNOWN_OPTION`` to an option it does not know, so a
client can tell whether its server takes one; a peer that never sends these
options sees exactly what gearmand would send it.  The server and the
libraries read the same definitions here.

- ``keep_result=SECONDS``: the results of the connection's next background
  jobs are kept that long after each ends (0: no longer), to be fetched by
  handle (see ``geartrain.server.results``).  SECONDS is a duration as
  :func:`geartrain.durations.parse_duration` reads it, up to :data:`MAX_KEEP_RESULT`.
"""

from __future__ import annotations

from .durations import parse_duration

__all__ = ["KEEP_NO_RESULT", "KEEP_RESULT", "MAX_KEEP_RESULT", "keep_result", "read_keep_result"]

KEEP_RESULT = b"keep_result="
KEEP_NO_RESULT = KEEP_RESULT + b"0"

MAX_KEEP_RESULT = 366 * 86400.0
"""The longest keep: a year (longer is surely a mistake)."""


def keep_result(seconds: float) -> bytes:
    """The option that keeps results ``seconds``.

    Raises:
        ValueError: ``seconds`` is negative or above :data:`MAX_KEEP_RESULT`.
    """
    if not 0 <= seconds <= MAX_KEEP_RESULT:
        raise ValueError(f"keep_result must be between 0 and a year, not {seconds} seconds")
    return KEEP_RESULT + (b"%.3f" % seconds).rstrip(b"0").rstrip(b".")


def read_keep_result(option: bytes) -> float | None:
    """The seconds a ``keep_result=SECONDS`` option asks for; None if ``option``
    is another one.

    Raises:
        ValueError: its value is not a duration up to a year.
    """
    if option[: len(KEEP_RESULT)].lower() != KEEP_RESULT:
        return None
    try:
        seconds = parse_duration(option[len(KEEP_RESULT) :].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        seconds = -1.0
    if not 0 <= seconds <= MAX_KEEP_RESULT:
        raise ValueError("keep_result takes a duration up to a year (3600, 90s, 15m, 1h, 2d)")
    return seconds
