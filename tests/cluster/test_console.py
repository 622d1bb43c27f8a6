"""The console on members of a two-member cluster: the members with their address,
lease age and what each holds, and the shared failed set, the same on every member."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

import pytest

from geartrain import Client, Worker
from gt_helpers import wait_for, working
from serverproc import free_port

from .conftest import LEASE, StartMember

pytestmark = [pytest.mark.backend, pytest.mark.timeout(120)]


def get(port: int, path: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        body = reply.read()
        assert reply.status == 200, (path, reply.status, body)
        return json.loads(body)
    finally:
        conn.close()


async def test_members_and_shared_failed_set(start_member: StartMember) -> None:
    consoles = [free_port(), free_port()]
    members = [start_member("--console-port", str(port)) for port in consoles]

    def both_listed() -> bool:
        return all(len(get(port, "/api/cluster")["members"]) == 2 for port in consoles)

    await wait_for(both_listed, timeout=30)
    views = [get(port, "/api/cluster") for port in consoles]
    host = socket.gethostname()
    for member, view in zip(members, views, strict=True):
        assert view["enabled"] is True
        addresses = {m["address"] for m in view["members"]}
        assert addresses == {f"{host}:{m.port}" for m in members}
        (me,) = [m for m in view["members"] if m["me"]]
        assert me["address"] == f"{host}:{member.port}"
        for m in view["members"]:
            assert 0 <= m["lease_age"] <= LEASE and m["holds"] >= 0
    assert {m["id"] for m in views[0]["members"]} == {m["id"] for m in views[1]["members"]}

    # A job that fails for good on the first member is in the failed set on both.
    worker = Worker([members[0].address])
    worker.register("doomed", lambda job: job.fail())
    async with working(worker), Client([members[0].address]) as client:
        handle = (await client.submit_background("doomed", b"d")).decode()

        def failed_everywhere() -> bool:
            return all(
                [j["handle"] for j in get(port, "/api/jobs?state=failed")["items"]] == [handle]
                for port in consoles
            )

        await wait_for(failed_everywhere, timeout=30)
        for i in range(3):
            await client.submit_background("waiting", b"w%d" % i)

        def shared_everywhere() -> bool:
            return all(
                {"function": "waiting", "jobs": 3, "running": 0}
                in get(port, "/api/cluster")["functions"]
                for port in consoles
            )

        await wait_for(shared_everywhere, timeout=30)
    assert get(consoles[1], f"/api/jobs/{handle}")["actions"] == ["retry", "delete"]
