"""What the server tells peers in fixed words, and how it reads numbers from them.

The ERROR packets carry gearmand's codes and texts byte for byte, since
clients match on them.
"""

from __future__ import annotations

import re
from typing import Final

from ..protocol import HEADER, RES, PacketType, pack

T = PacketType

NOOP = pack(RES, T.NOOP, ())
NO_JOB = pack(RES, T.NO_JOB, ())


_JOB_CREATED: Final = T.JOB_CREATED  # a static in the compiled build: no enum lookup


def job_created(handle: bytes) -> bytes:
    return HEADER.pack(RES, _JOB_CREATED, len(handle)) + handle


def error_packet(code: bytes, text: bytes) -> bytes:
    return pack(RES, T.ERROR, (code, text))


ERR_MAGIC = error_packet(b"INVALID_MAGIC", b"Request magic expected")
ERR_COMMAND = error_packet(b"INVALID_COMMAND", b"Command not expected")
ERR_ARGS = error_packet(b"INVALID_PACKET", b"Packet has too few arguments")
ERR_UNIQUE = error_packet(b"ARGUMENT_TOO_LARGE", b"Unique value too large")
ERR_QUEUE_FULL = error_packet(b"QUEUE_ERROR", b"Job queue is full")
ERR_PERMISSION = error_packet(b"PERMISSION_DENIED", b"Permission denied by access rules")
ERR_OPTION = error_packet(b"UNKNOWN_OPTION", b"Server does not recognize given option")
ERR_NO_JOB_DATA = error_packet(b"JOB_NOT_FOUND", b"Job does not exist on server")
ERR_NO_JOB_RESULT = error_packet(b"JOB_NOT_FOUND", b"Job given in work result not found")
ERR_NO_JOB_EXCEPTION = error_packet(
    b"JOB_NOT_FOUND", b"An exception was received for a job that does not exist"
)
ERR_HANDLE_SIZE = error_packet(
    b"ARGUMENT_TOO_LARGE",
    b"Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf",
)


MAX_NUMBER = 64
"""Longest numeric argument read (gearmand reads any length; a megabyte of
digits or spaces is an attack, and the handlers close such a connection)."""

# Leading space, sign, leading zeros, then up to 20 digits and one more to see
# whether there are more.
_NUMBER = re.compile(rb"[ \t\n\r\v\f]*([-+]?)0*([0-9]{0,20})([0-9]?)")
_LONG_MAX = 2**63 - 1


def c_strtol(value: bytes) -> int | None:
    """C's ``strtol`` (64-bit long) on bytes: optional space and sign, leading
    digits, else 0; None where strtol reports ERANGE, or for a value longer
    than :data:`MAX_NUMBER`."""
    if len(value) > MAX_NUMBER:
        return None
    m = _NUMBER.match(value)
    if m is None:  # cannot happen: every part of the pattern may be empty
        return 0
    sign, digits, more = m.groups()
    if more:
        return None
    number = int(digits or b"0")
    if sign == b"-":
        return -number if number <= _LONG_MAX + 1 else None
    return number if number <= _LONG_MAX else None


def c_atoi(value: bytes) -> int:
    """``strtol`` saturated as glibc's ``atoi`` sees it: out-of-range numbers
    become LONG_MAX or LONG_MIN (so ``& 0xFFFFFFFF`` gives what a C cast gives)."""
    number = c_strtol(value)
    if number is None:
        return -_LONG_MAX - 1 if value.lstrip(b" \t\n\r\v\f")[:1] == b"-" else _LONG_MAX
    return number
