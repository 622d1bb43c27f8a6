"""Which jobs a console list shows, over the server core on a manual clock."""

from __future__ import annotations

from geartrain.console.listing import PREVIEW, SCAN_LIMIT, JobFilter, Scan, in_preview, page
from geartrain.server.core import JobServer
from geartrain.server.model import Peer
from server.harness import Clock, make


def filled(count: int, clock: Clock) -> tuple[JobServer, Peer]:
    core = make(clock)
    peer = Peer(lambda data: None, lambda: None, "c")
    core.connect(peer)
    for i in range(count):
        clock.now += 0.001
        core.submit(peer, b"f%d" % (i % 3), b"u%d" % i, b"payload %d" % i, i % 3, True)
    return core, peer


def test_a_text_filter_stops_looking_after_the_scan_limit() -> None:
    core, _peer = filled(SCAN_LIMIT + 10, Clock())
    # "payload 1" starts 11,111 of the first 100,000 and several more after.
    found = page(core, JobFilter(text=b"payload 1"), 0, 10)
    assert not found.exact and 0 < found.total <= SCAN_LIMIT
    assert [j.created_at for j in found.items] == sorted(j.created_at for j in found.items)
    narrow = page(core, JobFilter(function=b"f1", text=b"payload 1"), 0, 10)
    expected = sum(1 for i in range(1, SCAN_LIMIT + 10, 3) if b"payload 1" in b"payload %d" % i)
    assert narrow.exact and narrow.total == expected  # one function's queue: under the limit


def test_totals_pages_and_cancelled_jobs() -> None:
    clock = Clock()
    core, _peer = filled(3000, clock)
    everything = page(core, JobFilter(), 0, 50)
    assert everything.total == 3000 and everything.exact
    handles = [j.handle for j in everything.items]
    for handle in handles[:10]:
        assert core.cancel(handle)
    after = page(core, JobFilter(), 0, 50)
    assert after.total == 2990 and [j.handle for j in after.items][:40] == handles[10:]
    deep = page(core, JobFilter(), 2980, 50)  # deep: the cancelled entries are dropped first
    for f in core.functions.values():
        assert f.queues is not None and [len(q) for q in f.queues] == f.queued
    assert len(deep.items) == 10 and deep.items[-1].handle == max(
        core.jobs, key=lambda h: core.jobs[h].created_at
    )
    assert page(core, JobFilter(priority=0), 0, 5).total == 996  # 0, 3, 6, 9 cancelled
    assert page(core, JobFilter(function=b"f2", priority=2), 0, 5).total == 997
    assert page(core, JobFilter(function=b"f2", priority=1), 0, 5).total == 0
    (one,) = page(core, JobFilter(unique=b"u2999"), 0, 5).items
    assert one.unique == b"u2999"
    assert len(list(Scan(core, JobFilter(function=b"f0")))) == 1000 - 4  # 0, 3, 6, 9 cancelled


def test_the_text_filter_looks_at_the_preview_only() -> None:
    long = b"x" * (PREVIEW - 3) + b"needle" + b"y" * 1000
    assert in_preview(b"xxx", long) and not in_preview(b"needle", long)
    assert in_preview(b"nee", b"x" * (PREVIEW - 3) + b"nee" + b"dle")
    assert in_preview(b"needle", b"short needle") and not in_preview(b"hay", b"short")
    core, peer = filled(0, Clock())
    core.submit(peer, b"f", b"a", long, 1, True)
    core.submit(peer, b"f", b"b", b"a needle", 1, True)
    assert [j.unique for j in page(core, JobFilter(text=b"needle"), 0, 5).items] == [b"b"]
