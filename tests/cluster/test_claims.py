"""The lease rule at hand-out, on a manual clock: a member whose loop stalled past
its lease (no timer has run) hands out none of the jobs it had claimed."""

from __future__ import annotations

from geartrain.cluster.keeper import SharedKeeper
from geartrain.cluster.lease import TRUST
from geartrain.cluster.node import ClusterNode
from geartrain.cluster.postgres import PostgresCluster
from geartrain.protocol import PacketType as T
from server.harness import Clock, Conn, make

LEASE = 3.0


def member(clock: Clock) -> SharedKeeper:
    """A member's keeper tied to a core, its lease granted now; the store is never
    reached."""
    node = ClusterNode(
        PostgresCluster("host=127.0.0.1", "queue"), lease=LEASE, clock=lambda: clock.now
    )
    keeper = node.attach(make(clock))
    node.lease.granted(7, clock.now)
    return keeper


def claim(keeper: SharedKeeper, job_id: int) -> bytes:
    handle = b"H:other:c%d" % job_id
    job = keeper.core.adopt(handle, b"resize", b"", b"img%d" % job_id, 1, b"", job_id, 0)
    keeper.held.hold(job_id, 1, job)
    return handle


def test_claimed_jobs_are_handed_out_while_the_lease_holds() -> None:
    clock = Clock()
    keeper = member(clock)
    first, second = claim(keeper, 1), claim(keeper, 2)
    worker = Conn(keeper.core, "worker")
    worker.send(T.CAN_DO, b"resize")
    clock.now += LEASE * TRUST - 0.1
    worker.send(T.GRAB_JOB)
    worker.send(T.GRAB_JOB)
    assert [args[0] for _t, args in worker.received()] == [first, second]


def test_a_member_stalled_past_its_lease_hands_out_no_claimed_job() -> None:
    clock = Clock()
    keeper = member(clock)
    running, waiting = claim(keeper, 1), claim(keeper, 2)
    core = keeper.core
    worker = Conn(core, "worker")
    worker.send(T.CAN_DO, b"resize")
    worker.send(T.GRAB_JOB)
    assert worker.one(T.JOB_ASSIGN)[0] == running
    # The loop stalls past the lease: no timer runs before the next packet.
    clock.now += LEASE * TRUST + 0.01
    worker.send(T.GRAB_JOB)
    worker.one(T.NO_JOB)
    # The unstarted claim is the cluster's again; the running one runs on (its
    # acknowledgement is fenced by the claim number in the store).
    assert waiting not in core.jobs and running in core.jobs
    assert [job.handle for _id, _claim, job in keeper.held.items()] == [running]
    # A foreground job of this server's own is handed out as ever.
    client = Conn(core, "client")
    handle = client.submit(b"resize", b"local")
    worker.send(T.GRAB_JOB)
    assert worker.one(T.JOB_ASSIGN)[0] == handle
