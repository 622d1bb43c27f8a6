"""A new ``bytes`` object with a writable view of its contents, to be filled in place.

A large packet's payload has to end up as ``bytes``; received into a buffer, it
costs a second copy into one.  CPython's own readers avoid that copy by creating
the object uninitialised (``PyBytes_FromStringAndSize(NULL, n)``) and filling it
before anyone else sees it; :func:`blank` does the same through ctypes, so the
kernel copies the payload straight into its final object.  The caller owns the
object until it is full: nothing may hash, share or read it before that.
Elsewhere than CPython :data:`AVAILABLE` is False.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["AVAILABLE", "blank"]

AVAILABLE = sys.implementation.name == "cpython"
"""Whether :func:`blank` works here (ctypes reaches CPython's C API)."""

_OFFSET = bytes.__basicsize__ - 1
"""Where a bytes object's contents start (ob_sval; the one byte counted in the
basic size is the terminating NUL)."""

_api: Any = None  # ctypes, loaded at the first large packet (the tools never need it)


def blank(size: int) -> tuple[bytes, memoryview]:
    """A ``bytes`` of ``size`` (> 1) uninitialised bytes and a writable view of them."""
    global _api
    if _api is None:
        import ctypes

        new = ctypes.pythonapi.PyBytes_FromStringAndSize
        new.restype = ctypes.py_object
        new.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
        _api = (ctypes, new)
    ctypes, new = _api
    data = new(None, size)
    view = memoryview((ctypes.c_char * size).from_address(id(data) + _OFFSET)).cast("B")
    return data, view
