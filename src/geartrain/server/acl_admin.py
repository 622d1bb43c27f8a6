"""The ``acl`` admin commands of OpenStack's gear (geard), over geartrain's rules.

``acl list``, ``acl grant VERB IDENTITY [PATTERN]``, ``acl revoke VERB IDENTITY``
and ``acl self-revoke VERB``, where VERB is gear's ``invoke`` (submit),
``register`` (work) or ``grant`` (the admin right to change rules), plus
geartrain's ``status`` (and ``all`` for the revokes).  Unlike gear, patterns
are globs (as in the settings file), a grant adds a pattern rather than
replacing one, an identity that does not exist yet is created, recognised
by a certificate name equal to it, and ``revoke all`` leaves the identity
with no rights rather than removing it (its peers would become anonymous).
Changes last until the settings file is read again (SIGHUP), which replaces
them.
"""

from __future__ import annotations

from .access import ANONYMOUS, AccessRules, Patterns, Rights
from .core import JobServer
from .model import Peer

__all__ = ["AclCommands"]

OK = b"OK\r\n"
ERR_DISABLED = b"ERR ACL_DISABLED\r\n"
ERR_DENIED = b"ERR PERMISSION_DENIED\r\n"
ERR_VERB = b"ERR UNKNOWN_ACL_VERB\r\n"
ERR_ARGS = b"ERR INVALID_ARGUMENTS acl+list|grant|revoke|self-revoke\r\n"

_PATTERN_VERBS = {b"invoke": "submit", b"register": "work", b"status": "status"}


class AclCommands:
    """Answers ``acl ...`` admin lines for one server."""

    def __init__(self, server: JobServer) -> None:
        self.server = server

    def line(self, peer: Peer, words: list[bytes]) -> bytes:
        rules = self.server.access
        if rules is None:
            return ERR_DISABLED  # no [access] table: as gear without an ACL
        sub = words[1].lower() if len(words) > 1 else b""
        if sub == b"list" and len(words) == 2:
            if not rules.may_admin(peer.identity, "read"):
                return self._denied(peer, b"acl list")
            return self.listing(rules)
        if sub == b"self-revoke" and len(words) == 3:
            if peer.identity == ANONYMOUS:
                return ERR_DENIED  # anonymous is everyone's identity, not one peer's
            return self.revoke(rules, words[2].lower(), peer.identity)
        if sub in (b"grant", b"revoke") and len(words) >= 4:
            identity = words[3].decode(errors="replace")
            if not rules.may_admin(peer.identity, "grant"):
                return self._denied(peer, b"acl " + sub)
            if sub == b"revoke":
                return self.revoke(rules, words[2].lower(), identity)
            pattern = words[4].decode(errors="replace") if len(words) == 5 else None
            return self.grant(rules, words[2].lower(), identity, pattern)
        return ERR_ARGS

    def listing(self, rules: AccessRules) -> bytes:
        # gear's columns first (register, invoke, grant), then geartrain's own.
        out = []
        for r in (*sorted(rules.identities.values(), key=lambda r: r.name), rules.anonymous):
            fields = (
                r.name,
                "register=" + _globs(r.work),
                "invoke=" + _globs(r.submit),
                f"grant={'grant' in r.admin}",
                "status=" + _globs(r.status),
                "admin=" + (",".join(a for a in sorted(r.admin)) or "None"),
            )
            out.append("\t".join(fields).encode() + b"\n")
        return b"".join(out) + b".\n"

    def grant(self, rules: AccessRules, verb: bytes, identity: str, pattern: str | None) -> bytes:
        rights = _current(rules, identity)
        if verb == b"grant":
            return self._apply(rules.changed(identity, admin=rights.admin | {"grant"}))
        kind = _PATTERN_VERBS.get(verb)
        if kind is None:
            return ERR_VERB
        if pattern is None:
            return ERR_ARGS
        globs = (*rights.patterns(kind).globs, pattern)
        return self._apply(rules.changed(identity, **{kind: Patterns(globs)}))

    def revoke(self, rules: AccessRules, verb: bytes, identity: str) -> bytes:
        if verb == b"all":
            nothing = Patterns([])
            return self._apply(
                rules.changed(
                    identity, submit=nothing, work=nothing, status=nothing, admin=frozenset()
                )
            )
        if verb == b"grant":
            rights = _current(rules, identity)
            return self._apply(rules.changed(identity, admin=rights.admin - {"grant"}))
        kind = _PATTERN_VERBS.get(verb)
        if kind is None:
            return ERR_VERB
        return self._apply(rules.changed(identity, **{kind: Patterns([])}))

    def _apply(self, rules: AccessRules) -> bytes:
        self.server.apply_access(rules)
        return OK

    def _denied(self, peer: Peer, what: bytes) -> bytes:
        self.server.refused(peer, "admin", what)
        return ERR_DENIED


def _current(rules: AccessRules, identity: str) -> Rights:
    if identity == ANONYMOUS:
        return rules.anonymous
    return rules.identities.get(identity) or Rights(identity)


def _globs(patterns: Patterns) -> str:
    return ",".join(patterns.globs) or "None"
