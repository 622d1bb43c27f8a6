"""The text admin protocol's answers as a client reads them (no I/O).

Which commands answer with a listing ended by a ``.`` line, and where an answer
ends in the bytes received: shared by the asyncio connection and the
command-line tools' blocking socket.
"""

from __future__ import annotations

__all__ = ["LISTINGS", "answer_end", "is_listing"]

LISTINGS = ("status", "workers", "prioritystatus", "show", "paused")
"""Commands whose answer is a list ended by a ``.`` line."""


def is_listing(line: bytes) -> bool:
    """Whether the command ``line`` is answered with a listing (by its first word)."""
    return line.split(b" ", 1)[0].lower().decode(errors="replace") in LISTINGS


def answer_end(buf: bytes | bytearray, listing: bool) -> int:
    """Where a text answer ends in ``buf``, or -1 if it is incomplete.

    A listing ends with a line holding ``.``; anything else (and an ERR line,
    which can answer a listing command too) is one line.
    """
    first = buf.find(b"\n")
    if first < 0:
        return -1
    if not listing or buf.startswith(b"ERR"):
        return first + 1
    if buf.startswith(b".\n") or buf.startswith(b".\r\n"):
        return first + 1
    for marker in (b"\n.\n", b"\n.\r\n"):
        pos = buf.find(marker)
        if pos >= 0:
            return pos + len(marker)
    return -1
