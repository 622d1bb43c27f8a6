"""Strict mode of ``geartrain client`` and ``admin``: ``--strict`` or ``GEARTRAIN_STRICT=1``.

The C tools exit 0 after most failures: a submission the server refused, a
server that cannot be reached, a ``-t`` timeout, a worker's exception, an
``ERR`` answer to an admin command.  In strict mode each of these makes the
exit status 1, so scripts can test it.  Off by default, so that the tools stay
byte for byte Debian's.
"""

from __future__ import annotations

import os

__all__ = ["ENVIRONMENT", "FLAG", "requested"]

FLAG = "--strict"
ENVIRONMENT = "GEARTRAIN_STRICT"


def requested(flag: bool) -> bool:
    """Strict mode: the flag given, or the variable set to anything but empty or ``0``."""
    return flag or os.environ.get(ENVIRONMENT, "") not in ("", "0")
