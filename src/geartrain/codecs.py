"""Payload conversions.

Gearman moves opaque bytes and never converts data between languages, so the
libraries take ``bytes`` (``str`` is encoded as UTF-8) and hand back
``bytes``.  Structured data is the application's business; :func:`dumps` and
:func:`loads` are a small JSON convention for it that PHP's ``json_encode``,
Perl's JSON and friends read and write as well.
"""

from __future__ import annotations

import json
from typing import Any, TypeAlias

__all__ = ["Payload", "dumps", "loads", "to_bytes"]

Payload: TypeAlias = bytes | bytearray | memoryview | str
"""What the libraries accept as job data, results, unique keys and updates."""


def to_bytes(data: Payload | None) -> bytes:
    """Return ``data`` as bytes: ``str`` as UTF-8, ``None`` as empty.

    Raises:
        TypeError: ``data`` is not bytes-like, ``str`` or ``None``.
    """
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if data is None:
        return b""
    raise TypeError(
        f"job data must be bytes or str, not {type(data).__name__} "
        "(use geartrain.codecs.dumps for structured data)"
    )


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` as compact UTF-8 JSON, for use as job data or a result."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def loads(data: Payload) -> Any:
    """Decode JSON job data or a result produced by :func:`dumps` (or any JSON encoder).

    Raises:
        ValueError: the data is not valid UTF-8 JSON.
    """
    return json.loads(to_bytes(data))
