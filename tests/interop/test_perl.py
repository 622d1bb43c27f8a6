"""Perl's Gearman::Client and Gearman::Worker against both servers."""

from __future__ import annotations

import pytest

from serverproc import ServerProc

from .conftest import HERE, Spawn, run, tool, wait_total, wait_workers

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

PERL = HERE / "perl"


@pytest.fixture
def perl_worker(server: ServerProc, spawn: Spawn) -> None:
    spawn([tool("perl"), str(PERL / "worker.pl"), str(server.port)])
    wait_workers(server.port, "reverse")
    wait_workers(server.port, "die")


def client(server: ServerProc, mode: str) -> bytes:
    result = run([tool("perl"), str(PERL / "client.pl"), str(server.port), mode], timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_round_trip(server: ServerProc, perl_worker: None) -> None:
    assert client(server, "do") == b"result dlrow\0olleh\n"


@pytest.mark.gearmand_differs
def test_failure_reaches_the_client(server: ServerProc, perl_worker: None) -> None:
    if server.kind == "gearmand":
        # gearmand turns the worker's WORK_EXCEPTION into WORK_FAIL "H\0"; the stray NUL
        # makes Gearman::Client die ("Got work_fail for unknown handle").
        result = run([tool("perl"), str(PERL / "client.pl"), str(server.port), "fail"])
        assert b"work_fail for unknown handle" in result.stderr
        return
    assert client(server, "fail") == b"failed=1\n"


def test_background(server: ServerProc, spawn: Spawn) -> None:
    out = client(server, "background")
    assert out.startswith(b"handle ")
    wait_total(server.port, "reverse", 1)
    spawn([tool("perl"), str(PERL / "worker.pl"), str(server.port)])
    wait_total(server.port, "reverse", 0)


def test_task_set(server: ServerProc, perl_worker: None) -> None:
    assert client(server, "taskset") == b"eerht,eno,owt\n"
