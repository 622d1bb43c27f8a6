"""What one acknowledgement's store work costs, and where it costs the event loop least.

    python benchmarks/commit_cost.py [--commits 2000] [--dir DIR]

One job at a time, as one-at-a-time clients cause: the crash level's append of
one record to the queue log (``geartrain.store.journal``), and, for each of
SQLite's ``synchronous=NORMAL`` and ``FULL`` (the power level), one job per
transaction, run on the event loop itself or handed to a store thread and back
(``run_in_executor``); as the wall time per job and the event loop thread's own
CPU time per job.  Also the fsync (fdatasync of a 4 KiB append) of the disk
under DIR, which bounds the power level.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from geartrain.store import StoredJob
from geartrain.store.journal import Journal


def connection(path: Path, sync: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.execute(
        "CREATE TABLE q (id INTEGER PRIMARY KEY, unique_key TEXT, function_name TEXT,"
        " priority INTEGER, data BLOB, when_to_run INTEGER)"
    )
    return conn


def committer(conn: sqlite3.Connection) -> Callable[[], None]:
    """One job per transaction, the statements geartrain's store issues."""
    ids = iter(range(1, 1 << 62))

    def commit() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO q VALUES (?, ?, ?, ?, ?, ?)", [(next(ids), "", "bench", 1, b"x" * 100, 0)]
        )
        conn.execute("COMMIT")

    return commit


def appender(directory: Path) -> tuple[Callable[[], None], Journal]:
    """The crash level's acknowledgement: one record in the queue log."""
    journal = Journal(directory / "log.sqlite3")
    ids = iter(range(1, 1 << 62))

    def append() -> None:
        journal.append([StoredJob(next(ids), b"bench", b"", b"x" * 100, 1, 0, b"H:bench:1")], [])

    append()  # the first record starts the log file: not timed
    return append, journal


async def on_loop(commit: Callable[[], None], n: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(n):
        commit()
        await asyncio.sleep(0)  # as the server does: one write per task step
    return (time.perf_counter() - wall) / n, (time.thread_time() - cpu) / n


async def via_thread(commit: Callable[[], None], n: int) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as thread:
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(n):
            await loop.run_in_executor(thread, commit)
        return (time.perf_counter() - wall) / n, (time.thread_time() - cpu) / n


def fsync_seconds(directory: Path, n: int = 200) -> float:
    """Median fdatasync of a 4 KiB append (what a WAL commit with FULL waits for)."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        samples = []
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            start = time.perf_counter()
            os.fdatasync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(samples)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="gt-commit-", dir=args.dir) as tmp:
        fsync = fsync_seconds(Path(tmp))
        print(f"fdatasync of a 4 KiB append: {fsync * 1e6:,.0f} µs (median)")
        print(f"  bound for two one-at-a-time clients at the power level: {2 / fsync:,.0f}")
        print("  acknowledgements/s (one fsync per pair)\n")
        print(f"{'store work':12} {'where':10} {'µs per job':>14} {'loop CPU µs':>12}")
        append, journal = appender(Path(tmp))
        try:
            wall, cpu = await on_loop(append, args.commits)
        finally:
            journal.close()
        print(f"{'log append':12} {'on loop':10} {wall * 1e6:14,.1f} {cpu * 1e6:12,.1f}")
        for sync in ("NORMAL", "FULL"):
            for where, run in (("on loop", on_loop), ("thread", via_thread)):
                conn = connection(Path(tmp) / f"{sync}-{where}.sqlite3".replace(" ", "-"), sync)
                try:
                    wall, cpu = await run(committer(conn), args.commits)
                finally:
                    conn.close()
                print(f"{sync:12} {where:10} {wall * 1e6:14,.0f} {cpu * 1e6:12,.0f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--dir", help="where the files go (the disk measured); default: /tmp")
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(main(parser.parse_args()))
