"""Access control: who a peer is, and what the rules let it do.

A peer's identity is decided once, when it connects (and again when the rules
change): the name of the first identity in the rules whose ``certificates``
hold its TLS client certificate's common name or one of its subject
alternative names; else the identity whose ``networks`` hold its address most
narrowly; else ``anonymous``.  Each identity has glob patterns for the
functions it may submit to, work on (CAN_DO) and query the status of, and a
set of admin actions.  Anonymous peers may do everything unless the rules
have an ``anonymous`` table.

The rules come from the ``[access]`` table of the settings file::

    [access]
    coalesce = "identity"          # or "any": unique keys join jobs across identities

    [access.anonymous]             # absent: anonymous peers may do everything
    submit = ["public.*"]

    [access.identities.resizer]
    certificates = ["resizer.example.com"]
    networks = ["10.1.0.0/16"]
    work = ["resize.*"]
    admin = ["read"]

Nothing here does I/O; the core asks, the core enforces.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .logs import LogThrottle

__all__ = [
    "ACTIONS",
    "ADMIN_COMMAND_ACTIONS",
    "ANONYMOUS",
    "KINDS",
    "AccessError",
    "AccessRules",
    "RefusalLog",
    "Rights",
    "certificate_names",
]

log = logging.getLogger("geartrain.server.access")

ANONYMOUS = "anonymous"

KINDS = ("submit", "work", "status", "admin")
"""What a refusal can be about; the metrics count each kind."""

ACTIONS = ("read", "cancel", "create", "drop", "maxqueue", "shutdown", "failed", "grant", "pause")
"""Admin actions: ``read`` is every listing; the others change the server
(``failed`` is retrying and deleting failed jobs; ``grant`` the acl commands
that change rules; ``pause`` pausing and resuming functions)."""

ADMIN_COMMAND_ACTIONS: dict[bytes, str] = {
    b"workers": "read",
    b"status": "read",
    b"prioritystatus": "read",
    b"show": "read",
    b"getpid": "read",
    b"verbose": "read",
    b"cancel": "cancel",
    b"create": "create",
    b"drop": "drop",
    b"maxqueue": "maxqueue",
    b"shutdown": "shutdown",
    b"retry": "failed",  # retry failed ...
    b"delete": "failed",  # delete failed ...
    b"pause": "pause",
    b"resume": "pause",
    b"paused": "read",
    b"result": "read",  # a background job's kept result
}
"""The right each gearmand admin command needs (``version`` needs none)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_FUNCTION_KINDS = ("submit", "work", "status")
_IDENTITY_KEYS = frozenset({"certificates", "networks", "admin", *_FUNCTION_KINDS})
_CACHE_LIMIT = 1 << 16


class AccessError(ValueError):
    """The ``[access]`` table is malformed; the message is one line."""


class Patterns:
    """Glob patterns over function names, matched as one regular expression."""

    __slots__ = ("globs", "everything", "_regex")

    def __init__(self, globs: Iterable[str]) -> None:
        self.globs = tuple(globs)
        self.everything = "*" in self.globs
        joined = "|".join(fnmatch.translate(g) for g in self.globs)
        self._regex = re.compile(joined.encode()) if joined and not self.everything else None

    def match(self, name: bytes) -> bool:
        if self.everything:
            return True
        return self._regex is not None and self._regex.match(name) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Patterns) and other.globs == self.globs

    def __hash__(self) -> int:
        return hash(self.globs)

    def __repr__(self) -> str:
        return f"Patterns({list(self.globs)!r})"


EVERYTHING = Patterns(["*"])
NOTHING = Patterns([])


@dataclass(frozen=True)
class Rights:
    """One identity: how it is recognised and what it may do."""

    name: str
    certificates: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()
    submit: Patterns = NOTHING
    work: Patterns = NOTHING
    status: Patterns = NOTHING
    admin: frozenset[str] = frozenset()

    @classmethod
    def everything(cls, name: str = ANONYMOUS) -> Rights:
        return cls(name, submit=EVERYTHING, work=EVERYTHING, status=EVERYTHING, admin=_ALL)

    @classmethod
    def from_toml(cls, name: str, table: Mapping[str, Any]) -> Rights:
        where = f"access.{name}" if name == ANONYMOUS else f"access.identities.{name}"
        if not isinstance(table, Mapping):
            raise AccessError(f"[{where}] must be a table")
        unknown = set(table) - _IDENTITY_KEYS
        if unknown:
            raise AccessError(f"[{where}] has unknown key {sorted(unknown)[0]!r}")
        patterns = {kind: Patterns(_strings(table, kind, where)) for kind in _FUNCTION_KINDS}
        admin = set(_strings(table, "admin", where))
        if "*" in admin:
            admin = set(_ALL)
        bad = admin - _ALL
        if bad:
            raise AccessError(
                f"[{where}] admin: unknown action {sorted(bad)[0]!r} (known: {', '.join(ACTIONS)})"
            )
        networks: list[Network] = []
        for text in _strings(table, "networks", where):
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise AccessError(f"[{where}] networks: {text!r} is not a CIDR network") from None
        return cls(
            name,
            certificates=frozenset(_strings(table, "certificates", where)),
            networks=tuple(networks),
            admin=frozenset(admin),
            **patterns,
        )

    def patterns(self, kind: str) -> Patterns:
        p: Patterns = getattr(self, kind)
        return p


_ALL = frozenset(ACTIONS)


def _strings(table: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AccessError(f"[{where}] {key} must be a list of strings")
    return value


@dataclass
class AccessRules:
    """Every identity's rights, and the questions the core asks of them.

    ``active`` is False for the default rules (no ``[access]`` table): then the
    core skips every check and behaves exactly as without access control."""

    identities: dict[str, Rights] = field(default_factory=dict)
    anonymous: Rights = field(default_factory=Rights.everything)
    coalesce_any: bool = False
    active: bool = False
    _cache: dict[tuple[str, str, bytes], bool] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def from_toml(cls, table: Mapping[str, Any] | None) -> AccessRules:
        """Read the ``[access]`` table (None or absent: everyone may do everything)."""
        if table is None:
            return cls()
        if not isinstance(table, Mapping):
            raise AccessError("[access] must be a table")
        unknown = set(table) - {"anonymous", "identities", "coalesce"}
        if unknown:
            raise AccessError(f"[access] has unknown key {sorted(unknown)[0]!r}")
        coalesce = table.get("coalesce", "identity")
        if coalesce not in ("identity", "any"):
            raise AccessError('[access] coalesce must be "identity" or "any"')
        identities_table = table.get("identities", {})
        if not isinstance(identities_table, Mapping):
            raise AccessError("[access.identities] must be a table of identities")
        if ANONYMOUS in identities_table:
            raise AccessError(
                f"[access.identities] {ANONYMOUS!r} is reserved: use [access.anonymous]"
            )
        identities = {n: Rights.from_toml(n, t) for n, t in identities_table.items()}
        anonymous = (
            Rights.from_toml(ANONYMOUS, table["anonymous"])
            if "anonymous" in table
            else Rights.everything()
        )
        return cls(identities, anonymous, coalesce == "any", active=True)

    # -- who is it ------------------------------------------------------------

    def identify(self, host: str, names: Sequence[str] = ()) -> str:
        """The identity of a peer from its certificate names and its address."""
        for name in names:
            for rights in self.identities.values():
                if name in rights.certificates:
                    return rights.name
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return ANONYMOUS
        best, prefix = ANONYMOUS, -1
        for rights in self.identities.values():
            for network in rights.networks:
                if network.prefixlen > prefix and address in network:
                    best, prefix = rights.name, network.prefixlen
        return best

    def rights(self, identity: str) -> Rights:
        return self.identities.get(identity) or self.anonymous

    # -- what may it do -----------------------------------------------------------

    def may(self, kind: str, identity: str, function: bytes) -> bool:
        """May ``identity`` submit / work / status (``kind``) on ``function``?"""
        key = (kind, identity, function)
        allowed = self._cache.get(key)
        if allowed is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            allowed = self._cache[key] = self.rights(identity).patterns(kind).match(function)
        return allowed

    def may_admin(self, identity: str, action: str) -> bool:
        """May ``identity`` perform the admin ``action`` (one of :data:`ACTIONS`)?

        The console asks this too, so both front ends grant the same rights."""
        return not self.active or action in self.rights(identity).admin

    @property
    def restricts_status(self) -> bool:
        """Some peer may not query some function's status: handles must not be guessable."""
        return self.active and any(
            not r.status.everything for r in (self.anonymous, *self.identities.values())
        )

    def joins(self, owner: str, identity: str) -> bool:
        """May a submission by ``identity`` coalesce with a job of ``owner``?"""
        return owner == identity or self.coalesce_any or not self.active

    # -- live changes (the acl admin commands) ----------------------------------------

    def changed(self, identity: str, **changes: Any) -> AccessRules:
        """New rules in which ``identity`` has ``changes``; an identity not known
        yet is created, recognised by a certificate name equal to it.  Identities
        are never removed: one left with no rights still denies its peers
        everything, where removing it would give them anonymous rights."""
        identities = dict(self.identities)
        anonymous = self.anonymous
        if identity == ANONYMOUS:
            anonymous = replace(anonymous, **changes)
        else:
            current = identities.get(identity) or Rights(
                identity, certificates=frozenset({identity})
            )
            identities[identity] = replace(current, **changes)
        return AccessRules(identities, anonymous, self.coalesce_any, active=True)


def certificate_names(peercert: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The subject common names and alternative names of a verified certificate
    (``SSLObject.getpeercert()``), common names first."""
    if not peercert:
        return ()
    names = [
        value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"
    ]
    names += [value for _kind, value in peercert.get("subjectAltName", ())]
    return tuple(names)


class RefusalLog:
    """Logs refused requests: one line per identity, kind and function a minute."""

    def __init__(self) -> None:
        self.throttle = LogThrottle()

    def note(self, kind: str, identity: str, host: str, function: bytes) -> None:
        if self.throttle.due((kind, identity, function)):
            log.warning(
                "Refused %s %s for %s from %s",
                kind,
                function.decode(errors="replace"),
                identity,
                host,
            )
