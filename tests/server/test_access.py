"""Access rules and their enforcement in the core, driven with no sockets."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from geartrain.server.access import ANONYMOUS, AccessRules, certificate_names
from geartrain.server.admin import AdminCommands
from geartrain.server.core import JobServer
from geartrain.server.settings import SettingsError, load_settings

from .harness import Conn, T, resolved

RULES = """
[access.anonymous]
submit = ["public.*"]
status = ["public.*"]

[access.identities.resizer]
certificates = ["resizer.example.com"]
work = ["resize.*"]

[access.identities.frontend]
certificates = ["frontend"]
networks = ["10.0.0.0/8"]
submit = ["resize.*", "public.*"]
status = ["resize.*"]
admin = ["read"]

[access.identities.ops]
networks = ["10.9.0.0/16"]
admin = ["*"]
"""


def rules(text: str = RULES) -> AccessRules:
    return AccessRules.from_toml(tomllib.loads(text)["access"])


def server_with(text: str = RULES) -> JobServer:
    server = JobServer()
    server.apply_access(rules(text))
    return server


def conn(server: JobServer, host: str = "192.0.2.1", *names: str) -> Conn:
    return Conn(server, host, names)


def test_identities_come_from_certificate_names_then_the_narrowest_network() -> None:
    r = rules()
    assert r.identify("192.0.2.1", ("resizer.example.com",)) == "resizer"
    assert r.identify("10.1.2.3") == "frontend"
    assert r.identify("10.9.0.1") == "ops"  # /16 beats /8
    assert r.identify("10.9.0.1", ("frontend",)) == "frontend"  # a certificate beats an address
    assert r.identify("192.0.2.1", ("someone-else",)) == ANONYMOUS
    assert r.identify("-") == ANONYMOUS


def test_patterns_are_globs_per_kind() -> None:
    r = rules()
    assert r.may("work", "resizer", b"resize.png")
    assert not r.may("work", "resizer", b"billing")
    assert not r.may("submit", "resizer", b"resize.png")  # nothing not listed
    assert r.may("submit", ANONYMOUS, b"public.echo")
    assert not r.may("work", ANONYMOUS, b"public.echo")


def test_without_an_access_table_everyone_may_do_everything() -> None:
    r = AccessRules.from_toml(None)
    assert not r.active
    assert r.may("submit", ANONYMOUS, b"billing") and r.may_admin(ANONYMOUS, "shutdown")
    assert not r.restricts_status


def test_admin_rights() -> None:
    r = rules()
    assert r.may_admin("frontend", "read") and not r.may_admin("frontend", "cancel")
    assert all(r.may_admin("ops", a) for a in ("cancel", "drop", "maxqueue", "shutdown", "failed"))
    assert not r.may_admin(ANONYMOUS, "read")  # an anonymous table lists no admin rights


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[access]\nfoo = 1", "[access] has unknown key 'foo'"),
        ("[access.identities.a]\nwork = 3", "[access.identities.a] work must be a list of strings"),
        ("[access.identities.a]\nnetworks = ['10.0.0.300/8']", "is not a CIDR network"),
        ("[access.identities.a]\nadmin = ['reboot']", "unknown action 'reboot'"),
        ("[access.identities.anonymous]\nwork = []", "'anonymous' is reserved"),
        ("[access]\ncoalesce = 'never'", 'coalesce must be "identity" or "any"'),
    ],
)
def test_bad_rules_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as error:
        load_settings(str(path))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_certificate_names_are_common_names_then_alternative_names() -> None:
    cert = {
        "subject": ((("organizationName", "x"),), (("commonName", "worker-1"),)),
        "subjectAltName": (("DNS", "worker-1.example.com"), ("IP Address", "10.0.0.5")),
    }
    assert certificate_names(cert) == ("worker-1", "worker-1.example.com", "10.0.0.5")
    assert certificate_names(None) == ()


def test_refused_submission_gets_error_and_creates_no_job() -> None:
    server = server_with()
    client = conn(server)
    client.send(T.SUBMIT_JOB, b"billing", b"", b"x")
    assert client.one(T.ERROR) == (b"PERMISSION_DENIED", b"Permission denied by access rules")
    assert not server.jobs and b"billing" not in server.functions
    assert server.stats.refused_submit == 1
    client.submit(b"public.echo", b"x")  # what the rules allow still works
    assert len(server.jobs) == 1


def test_refused_registration_never_receives_jobs() -> None:
    server = server_with()
    worker = conn(server, "192.0.2.9", "resizer.example.com")
    worker.send(T.CAN_DO, b"billing")
    worker.send(T.CAN_DO, b"resize.png")
    assert worker.received() == []  # CAN_DO has no reply, refused or not
    client = conn(server, "10.0.0.1")
    client.submit(b"resize.png", b"img")
    worker.send(T.GRAB_JOB)
    assert worker.one(T.JOB_ASSIGN)[1] == b"resize.png"
    assert list(server.functions[b"resize.png"].workers) == [worker.peer]
    assert b"billing" not in server.functions
    assert server.stats.refused_work == 1


def test_status_of_a_function_the_rules_hide_answers_unknown() -> None:
    server = server_with()
    frontend = conn(server, "10.0.0.1")
    handle = frontend.submit(b"resize.png", b"img", kind=T.SUBMIT_JOB_BG)
    frontend.send(T.GET_STATUS, handle)
    assert frontend.one(T.STATUS_RES)[1] == b"1"
    stranger = conn(server)
    stranger.send(T.GET_STATUS, handle)
    assert stranger.one(T.STATUS_RES) == (handle, b"0", b"0", b"0", b"0")
    assert server.stats.refused_status == 1


def test_handles_are_unguessable_only_where_status_is_restricted() -> None:
    restricted = server_with()
    handle = conn(restricted).submit(b"public.a", b"", kind=T.SUBMIT_JOB_BG)
    prefix, token = handle.rsplit(b"-", 1)
    assert prefix.endswith(b":1") and len(token) == 16
    open_server = server_with("[access.identities.x]\nstatus = ['*']")
    assert conn(open_server).submit(b"f", b"", kind=T.SUBMIT_JOB_BG).endswith(b":1")


def test_coalescing_never_joins_another_identity() -> None:
    server = server_with()
    victim = conn(server, "10.0.0.1")
    first = victim.submit(b"public.report", b"secret", unique=b"key")
    stranger = conn(server)
    second = stranger.submit(b"public.report", b"mine", unique=b"key")
    assert first != second and len(server.jobs) == 2
    assert victim.submit(b"public.report", b"again", unique=b"key") == first  # same identity joins
    assert server.stats.coalesced == 1


def test_coalescing_across_identities_when_the_rules_say_so() -> None:
    server = server_with('[access]\ncoalesce = "any"\n' + RULES)
    first = conn(server, "10.0.0.1").submit(b"public.report", b"a", unique=b"key")
    assert conn(server).submit(b"public.report", b"b", unique=b"key") == first


def test_new_rules_apply_to_connected_peers_without_dropping_them() -> None:
    server = server_with()
    worker = conn(server, "192.0.2.9", "resizer.example.com")
    worker.send(T.CAN_DO, b"resize.png")
    assert len(server.functions[b"resize.png"].workers) == 1
    server.apply_access(rules(RULES.replace('work = ["resize.*"]', 'work = ["thumb.*"]')))
    assert list(server.functions[b"resize.png"].workers) == []
    assert worker.peer in server.peers and not worker.closed
    worker.send(T.CAN_DO, b"thumb.small")
    assert len(server.functions[b"thumb.small"].workers) == 1
    server.apply_access(AccessRules())  # no rules at all: back to everything
    assert worker.peer.identity == ANONYMOUS and server.access is None


def admin(server: JobServer, c: Conn, line: str) -> bytes:
    reply = AdminCommands(server, lambda: "NOTICE").line(c.peer, line.encode())
    assert reply is not None
    return resolved(reply)


def test_admin_commands_need_their_rights() -> None:
    server = server_with()
    reader, ops, anyone = conn(server, "10.0.0.1"), conn(server, "10.9.0.1"), conn(server)
    handle = reader.submit(b"public.job", b"")
    assert admin(server, reader, "status").endswith(b".\n")
    denied = b"ERR PERMISSION_DENIED not+allowed+by+the+access+rules\r\n"
    assert admin(server, reader, f"cancel job {handle.decode()}") == denied
    assert admin(server, anyone, "workers") == denied
    assert admin(server, anyone, "version").startswith(b"OK ")  # needs no right
    assert admin(server, ops, f"cancel job {handle.decode()}") == b"OK\r\n"
    assert admin(server, ops, "maxqueue public.job 5") == b"OK\r\n"
    assert server.stats.refused_admin == 2


def test_acl_commands_as_gear() -> None:
    server = server_with()
    ops, reader = conn(server, "10.9.0.1"), conn(server, "10.0.0.1")
    assert admin(server, reader, "acl grant register x y") == b"ERR PERMISSION_DENIED\r\n"
    assert admin(server, ops, "acl grant register newworker thumb.*") == b"OK\r\n"
    assert admin(server, ops, "acl grant invoke newworker resize.*") == b"OK\r\n"
    assert admin(server, ops, "acl grant bogus newworker x") == b"ERR UNKNOWN_ACL_VERB\r\n"
    listing = admin(server, reader, "acl list").decode()
    assert "newworker\tregister=thumb.*\tinvoke=resize.*\tgrant=False" in listing
    assert listing.endswith("\n.\n")
    # The new identity is recognised by a certificate name equal to it.
    worker = conn(server, "192.0.2.7", "newworker")
    assert worker.peer.identity == "newworker"
    worker.send(T.CAN_DO, b"thumb.small")
    assert len(server.functions[b"thumb.small"].workers) == 1
    assert admin(server, worker, "acl self-revoke register") == b"OK\r\n"
    assert list(server.functions[b"thumb.small"].workers) == []
    assert admin(server, conn(server), "acl self-revoke all") == b"ERR PERMISSION_DENIED\r\n"
    assert admin(server, ops, "acl revoke all newworker") == b"OK\r\n"
    listing = admin(server, reader, "acl list").decode()
    assert "newworker\tregister=None\tinvoke=None\tgrant=False" in listing


def test_acl_commands_without_rules_are_disabled() -> None:
    server = JobServer()
    assert admin(server, conn(server), "acl list") == b"ERR ACL_DISABLED\r\n"


def test_pausing_needs_the_pause_right() -> None:
    server = server_with(
        RULES + '\n[access.identities.pauser]\nnetworks = ["10.8.0.0/16"]\n'
        'admin = ["read", "pause"]\n'
    )
    reader, pauser, ops = (
        conn(server, "10.0.0.1"),
        conn(server, "10.8.0.1"),
        conn(server, "10.9.0.1"),
    )
    denied = b"ERR PERMISSION_DENIED not+allowed+by+the+access+rules\r\n"
    assert admin(server, reader, "pause f") == denied
    assert admin(server, reader, "resume f") == denied
    assert admin(server, pauser, "pause f") == b"OK\r\n"
    assert admin(server, reader, "paused") == b"f\n.\n"  # a listing: the read right
    assert admin(server, ops, "resume f") == b"OK\r\n"  # "*" holds every right
    assert admin(server, conn(server), "paused") == denied
    assert server.stats.refused_admin == 3
