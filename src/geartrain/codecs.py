"""Payload conversions.

Gearman moves opaque bytes and never converts data between languages, so the
wire always carries bytes and any language's peer can read them.  In the
Python API, ``bytes`` go as they are, ``str`` as UTF-8, and any other object
through the function's :class:`Codec`, JSON unless one was given
(:data:`JSON`: compact UTF-8 JSON, which PHP's ``json_encode``, Perl's JSON and
friends read and write as well; an empty payload is JSON's None).  A codec
applies both ways: the client decodes a job's result with the codec that
encoded its data, or with the function's codec where it was given one; a
worker decodes workloads (``job.value``) with the function's codec.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, TypeAlias

__all__ = ["JSON", "RAW", "Codec", "Payload", "codec_for", "dumps", "encode", "loads", "to_bytes"]

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


class Codec(Protocol):
    """Turns a function's objects into payload bytes and back."""

    def encode(self, obj: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class _Json:
    def encode(self, obj: Any) -> bytes:
        return dumps(obj)

    def decode(self, data: bytes) -> Any:
        return loads(data) if data else None  # None goes as empty (see encode)


class _Raw:
    def encode(self, obj: Any) -> bytes:
        return to_bytes(obj)

    def decode(self, data: bytes) -> Any:
        return data


JSON: Codec = _Json()
"""The default codec: compact UTF-8 JSON; an empty payload decodes to None."""

RAW: Codec = _Raw()
"""No conversion: bytes (or str as UTF-8) only; other objects are a TypeError."""


def codec_for(obj: Any, codec: Codec | None = None) -> Codec | None:
    """The codec ``obj`` goes through: none for bytes, ``str`` and ``None`` (they
    go as they are), ``codec`` (JSON by default) for anything else."""
    if obj is None or isinstance(obj, bytes | bytearray | memoryview | str):
        return None
    return codec or JSON


def encode(obj: Any, codec: Codec | None = None) -> bytes:
    """Payload bytes for ``obj``: bytes as they are, ``str`` as UTF-8, ``None`` as
    empty, anything else with ``codec`` (JSON by default)."""
    used = codec_for(obj, codec)
    return to_bytes(obj) if used is None else used.encode(obj)
