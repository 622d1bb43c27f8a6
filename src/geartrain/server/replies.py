"""What the server tells peers in fixed words, and how it reads numbers from them.

The ERROR packets carry gearmand's codes and texts byte for byte, since
clients match on them.
"""

from __future__ import annotations

from ..protocol import RES, PacketType, pack

T = PacketType

NOOP = pack(RES, T.NOOP, ())
NO_JOB = pack(RES, T.NO_JOB, ())


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


def c_atoi(value: bytes) -> int:
    """C's ``strtol``/``atoi`` on bytes: optional space and sign, leading digits, else 0."""
    text = value.lstrip(b" \t\n\r\v\f")
    end = 1 if text[:1] in (b"-", b"+") else 0
    while end < len(text) and 48 <= text[end] <= 57:
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0
