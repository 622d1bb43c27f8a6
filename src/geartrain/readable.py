"""How many received bytes the kernel holds for a socket (``FIONREAD``).

A decoder that knows a large packet's body has already arrived in the kernel
can allocate it whole at once and have the kernel copy it straight there,
instead of growing pieces and copying them together (see
:class:`~geartrain.protocol.Decoder`).  Asked when a large body needs a new
piece (once, when the whole body is there), never for small packets.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["waiting"]

try:
    from fcntl import ioctl
    from termios import FIONREAD
except ImportError:  # not a Unix: no hint, the decoder grows its pieces
    ioctl = None  # type: ignore[assignment]


def waiting(fd: int) -> Callable[[], int] | None:
    """A function returning the bytes ready to read on ``fd`` (0 once it has
    closed), or None where the platform cannot tell."""
    if ioctl is None or fd < 0:
        return None
    four = bytes(4)

    def ready() -> int:
        try:
            return int.from_bytes(ioctl(fd, FIONREAD, four), sys.byteorder)
        except OSError:
            return 0

    return ready
