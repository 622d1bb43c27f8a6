"""The console on members of a two-member cluster: the members with their address,
lease age and what each holds, and the shared jobs and failed set, the same on
every member."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
from typing import Any

import pytest

from geartrain import Client, Priority, Worker
from gt_helpers import wait_for, working
from serverproc import free_port
from store.proxy import TcpProxy

from .conftest import LEASE, StartMember
from .stores import SharedStore

pytestmark = [pytest.mark.backend, pytest.mark.timeout(120)]


def fetch(port: int, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def post(port: int, path: str, body: Any) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json", "X-Geartrain-Console": "1"}
        conn.request("POST", path, json.dumps(body), headers)
        reply = conn.getresponse()
        answer = json.loads(reply.read())
        assert reply.status == 200, (path, reply.status, answer)
        return answer
    finally:
        conn.close()


def get(port: int, path: str) -> Any:
    status, body = fetch(port, path)
    assert status == 200, (path, status, body)
    return body


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


async def test_shared_jobs_listed_alike_on_every_member(start_member: StartMember) -> None:
    consoles = [free_port(), free_port()]
    members = [start_member("--console-port", str(port)) for port in consoles]
    release = asyncio.Event()

    async def hold(job: Any) -> bytes:
        await release.wait()
        return b"done"

    # The second member's worker holds two jobs submitted to the first member.
    worker = Worker([members[1].address])
    worker.register("held", hold)
    async with working(worker), Client([members[0].address]) as client:
        held = {(await client.submit_background("held", b"h%d" % i)).decode() for i in range(2)}
        waiting = []
        async with Client([members[1].address]) as other:
            for i, priority in enumerate([Priority.LOW, Priority.HIGH, Priority.NORMAL] * 2):
                submit = (client, other)[i % 2].submit_background
                name = f"w{i}".encode() + (b" needle" if i == 4 else b"")
                handle = await submit("waiting", name, priority=priority, unique=f"u{i}")
                waiting.append(handle.decode())

        def lists(path: str) -> list[Any]:
            return [get(port, path) for port in consoles]

        def running_everywhere() -> bool:
            return all(
                {j["handle"] for j in view["items"]} == held
                for view in lists("/api/jobs?state=running")
            )

        await wait_for(running_everywhere, timeout=30)
        for path in (
            "/api/jobs?state=running",
            "/api/jobs?state=queued",
            "/api/jobs?state=queued&limit=2&offset=2",
            "/api/jobs?state=queued&sort=-age&limit=4",
            "/api/jobs?state=queued&function=waiting&priority=high",
            "/api/jobs?state=queued&unique=u3",
            "/api/jobs?state=queued&q=needle",
            "/api/jobs?state=queued&function=nothing",
        ):
            first, second = lists(path)
            assert first["items"] == second["items"], path
            assert (first["total"], first["exact"]) == (second["total"], second["exact"]), path
        queued = get(consoles[0], "/api/jobs?state=queued")
        assert queued["total"] == 6 and queued["exact"] is True
        # In the order members claim them: high priority first, then the oldest.
        assert [j["handle"] for j in queued["items"]] == [waiting[i] for i in (1, 4, 2, 5, 0, 3)]
        assert (
            get(consoles[1], "/api/jobs?state=queued&limit=2&offset=2")["items"]
            == (queued["items"][2:4])
        )
        high = get(consoles[1], "/api/jobs?state=queued&function=waiting&priority=high")
        assert (high["total"], [j["handle"] for j in high["items"]]) == (
            2,
            [waiting[1], waiting[4]],
        )
        assert [
            j["handle"] for j in get(consoles[0], "/api/jobs?state=queued&unique=u3")["items"]
        ] == [waiting[3]]
        found = get(consoles[1], "/api/jobs?state=queued&q=needle")
        assert (found["total"], found["items"][0]["handle"]) == (1, waiting[4])
        running = get(consoles[0], "/api/jobs?state=running")
        assert running["total"] == 2
        assert {j["member"] for j in running["items"]} == {
            m["id"]
            for m in get(consoles[0], "/api/cluster")["members"]
            if m["address"].endswith(f":{members[1].port}")
        }
        # A job submitted to one member has its page on the other.
        detail = get(consoles[0], f"/api/jobs/{waiting[1]}")
        assert (detail["state"], detail["payload"], detail["actions"]) == (
            "queued",
            "w1",
            ["cancel"],
        )
        # The member's own view is still there.
        assert get(consoles[0], "/api/jobs?state=queued&scope=member")["total"] == 0
        # A job due later, submitted to one member, is listed as scheduled on both.
        async with Client([members[1].address]) as other:
            later = (await other.submit_background("later", b"l", when=time.time() + 3600)).decode()
        for port in consoles:
            (scheduled,) = get(port, "/api/jobs?state=scheduled")["items"]
            assert (scheduled["handle"], scheduled["state"]) == (later, "scheduled")
            assert scheduled["due"] > time.time() + 3000
        # An action on every job a filter matches takes the jobs the list shows.
        body = {"action": "cancel", "filter": {"state": "queued", "priority": "high"}}
        assert post(consoles[0], "/api/jobs/bulk", body) == {"touched": 2}
        for port in consoles:
            left = get(port, "/api/jobs?state=queued")
            assert [j["handle"] for j in left["items"]] == [waiting[i] for i in (2, 5, 0, 3)]
        release.set()


async def test_store_that_does_not_answer_gives_503(
    start_member: StartMember, shared_store: SharedStore
) -> None:
    proxy = await TcpProxy(*shared_store.target).start()
    port = free_port()
    # Started from a thread: the proxy runs on this loop, and starting waits for the server.
    member = await asyncio.to_thread(start_member, "--console-port", str(port), via=proxy.port)
    try:
        async with Client([member.address]) as client:
            handle = (await client.submit_background("waiting", b"w")).decode()
        view = await asyncio.to_thread(get, port, "/api/jobs?state=queued")
        assert [j["handle"] for j in view["items"]] == [handle]
        proxy.blackhole()
        for path in ("/api/jobs?state=queued", f"/api/jobs/{handle}"):
            status, body = await asyncio.to_thread(fetch, port, path)
            assert status == 503, (path, body)
            assert body["error"].startswith("the shared store did not answer")
            assert "\n" not in body["error"]
        proxy.heal()

        def listed() -> bool:
            status, body = fetch(port, "/api/jobs?state=queued")
            return status == 200 and body["total"] == 1

        await wait_for(lambda: asyncio.to_thread(listed), timeout=60)
    finally:
        await proxy.stop()
