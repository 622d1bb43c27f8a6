"""Job server addresses (``"host:port"`` strings, tuples and lists of them) and how
long to wait for a server.

Kept apart from :mod:`geartrain.connection` (and asyncio) so the command-line
tools parse their servers without loading the libraries; for the same reason
this module imports neither ``dataclasses`` nor ``typing``, which would add
about 7 ms to every start of a tool.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Final

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_IO_TIMEOUT",
    "DEFAULT_PORT",
    "Address",
    "ServerSpec",
    "parse_address",
    "parse_servers",
]

DEFAULT_PORT = 4730
"""IANA's port for Gearman (gearmand's default)."""

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a TCP connect; a dead host must not hang a submission."""

DEFAULT_IO_TIMEOUT = 10.0
"""Seconds to wait for the answer to a request (JOB_CREATED, STATUS_RES, ...).

A server answers these at once; silence this long means a dead or wedged
peer, so the connection is dropped and callers fail over.
"""


class Address:
    """A job server's host and port (immutable, compared and hashed by value)."""

    __slots__ = ("host", "port")

    def __init__(self, host: str, port: int = DEFAULT_PORT) -> None:
        self.host: Final = host
        self.port: Final = port

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Address):
            return NotImplemented
        return (self.host, self.port) == (other.host, other.port)

    def __hash__(self) -> int:
        return hash((self.host, self.port))

    def __repr__(self) -> str:
        return f"Address(host={self.host!r}, port={self.port!r})"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


ServerSpec = str | tuple[str, int] | Address
"""A server as ``"host:port"``, ``"host"`` (port 4730), ``"[::1]:4730"`` or ``(host, port)``."""


def parse_address(spec: ServerSpec) -> Address:
    """Parse one server given as a string, a ``(host, port)`` tuple or an :class:`Address`.

    Raises:
        ValueError: the port is not a number in 0..65535, or the host is empty.
    """
    if isinstance(spec, Address):
        return spec
    if isinstance(spec, tuple):
        host, port = spec
        return _checked(str(host), int(port))
    text = spec.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        end = text.find("]")
        if end < 0:
            raise ValueError(f"bad server address {spec!r}")
        host, rest = text[1:end], text[end + 1 :]
        if not rest:
            return _checked(host, DEFAULT_PORT)
        if not rest.startswith(":"):
            raise ValueError(f"bad server address {spec!r}")
        return _checked(host, _port(rest[1:], spec))
    if text.count(":") == 1:
        name, port_text = text.split(":")
        return _checked(name, _port(port_text, spec))
    # No colon: a bare host.  Several colons: a bare IPv6 address.
    return _checked(text, DEFAULT_PORT)


def _port(text: str, spec: object) -> int:
    if not text:
        return DEFAULT_PORT
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"bad port in server address {spec!r}") from None


def _checked(host: str, port: int) -> Address:
    if not host:
        raise ValueError("empty host in server address")
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return Address(host, port or DEFAULT_PORT)


def parse_servers(servers: ServerSpec | Iterable[ServerSpec] | None) -> list[Address]:
    """Parse a server list.

    A string may hold several servers separated by commas, as in libgearman's
    ``GEARMAN_SERVER`` variable.  ``None`` or an empty list means
    ``localhost:4730``.  Duplicates are dropped, order is kept.
    """
    if servers is None:
        items: list[ServerSpec] = []
    elif isinstance(servers, str):
        items = [part for part in servers.split(",") if part.strip()]
    elif isinstance(servers, tuple | Address) and not _is_tuple_list(servers):
        items = [servers]
    else:
        items = list(servers)  # type: ignore[arg-type]
    out: list[Address] = []
    for item in items:
        addr = parse_address(item)
        if addr not in out:
            out.append(addr)
    return out or [Address("localhost", DEFAULT_PORT)]


def _is_tuple_list(value: object) -> bool:
    # ("host", 4730) is one server; (("a", 1), ("b", 2)) is two.
    return isinstance(value, tuple) and not (
        len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)
    )
