"""Pausing and resuming a function from the console: the actions, their token and
access rules, what /api/ and /metrics show, and who did it in the server log."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from wire import admin_command

from .conftest import Console


def test_pause_and_resume(start_console: Callable[..., Console]) -> None:
    console = start_console("--verbose", "INFO")
    admin_command(console.server.port, "create function email")
    assert console.act("/api/functions/email/pause") == (
        200,
        {"function": "email", "paused": True, "changed": True},
    )
    assert console.act("/api/functions/email/pause")[1]["changed"] is False
    assert admin_command(console.server.port, "paused") == b"email\n.\n"
    rows = {f["function"]: f for f in console.get("/api/functions")}
    assert rows["email"]["paused"] is True
    assert console.get("/api/status")["paused"] == ["email"]
    assert console.act("/api/functions/email/resume") == (
        200,
        {"function": "email", "paused": False, "changed": True},
    )
    assert console.get("/api/functions")[0]["paused"] is False
    assert console.get("/api/status")["paused"] == []
    log = console.server.log()
    assert "Function email paused by 127.0.0.1 (console)" in log
    assert "Function email resumed by 127.0.0.1 (console)" in log


def test_the_paused_gauge(console: Console) -> None:
    admin_command(console.server.port, "create function free")
    admin_command(console.server.port, "pause held")  # not known to the server otherwise
    status, _, body = console.request("GET", "/metrics")
    assert status == 200
    lines = set(body.decode().splitlines())
    assert 'geartrain_function_paused{function="held"} 1.0' in lines
    assert 'geartrain_function_paused{function="free"} 0.0' in lines
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert checked.returncode == 0 and not checked.stdout + checked.stderr, checked


def test_pausing_needs_the_token_and_the_header(start_console: Callable[..., Console]) -> None:
    console = start_console("--http-token", "s3cret", "--verbose", "INFO")
    assert console.act("/api/functions/f/pause")[0] == 401
    assert console.act("/api/functions/f/pause", Authorization="Bearer wrong")[0] == 401
    status, _, _ = console.request(
        "POST", "/api/functions/f/pause", headers={"Authorization": "Bearer s3cret"}
    )
    assert status == 403  # no CSRF header
    assert admin_command(console.server.port, "paused") == b".\n"
    assert console.act("/api/functions/f/pause", Authorization="Bearer s3cret")[0] == 200
    assert admin_command(console.server.port, "paused") == b"f\n.\n"
    assert "Function f paused by 127.0.0.1 (console with the token)" in console.server.log()


def test_access_rules_grant_pausing(start_console: Callable[..., Console], tmp_path: Path) -> None:
    settings = tmp_path / "read.toml"
    settings.write_text('[access.anonymous]\nadmin = ["read"]\n')
    console = start_console(f"--settings={settings}")
    status, reply = console.act("/api/functions/f/pause")
    assert status == 403 and "pause" in reply
    assert console.act("/api/functions/f/resume")[0] == 403
    assert console.get("/api/status")["paused"] == []
    assert console.get("/api/status")["counters"]["refused_admin"] == 2
    granted = tmp_path / "pause.toml"
    granted.write_text('[access.anonymous]\nadmin = ["read", "pause"]\n')
    console = start_console(f"--settings={granted}", "--verbose", "INFO")
    assert console.act("/api/functions/f/pause")[0] == 200
    assert console.get("/api/status")["paused"] == ["f"]
    assert "Function f paused by anonymous at 127.0.0.1 (console)" in console.server.log()
