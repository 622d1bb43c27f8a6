"""The cluster's shared state in Redis: jobs, server leases, claims, fenced acks,
retries, the failed-job set and schedules' firings.

The keys and the Lua scripts over them are in :mod:`.redis_scripts`; every
operation that changes more than one key is one script (EVALSHA), so a batch
is atomic and costs one round trip.  Keys carry no hash tag: one Redis primary
at one address, not a sharded Redis Cluster.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import Callable, Sequence
from typing import Any, cast

from redis.asyncio.client import PubSub
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from ..store.records import FailedJob, KeptResult, SharedJob, SharedQuery, decode_outcomes
from ..store.redis import RedisStore
from . import Claimed, Failure, Orphan, Retry, Submission, cluster_handle, coalesce_key
from . import redis_scripts as lua
from .redis_listing import RedisLists
from .states import State

__all__ = ["RedisCluster"]

log = logging.getLogger("geartrain.cluster")

ERRORS = (RedisError, OSError, TimeoutError)
"""What a lost or failing Redis raises."""

ID_RANGE = 1 << 48
"""Server ids are drawn from 1 to this (exact as Lua numbers)."""

FAILED_PAGE = 1000
"""Failed jobs read, retried, deleted or trimmed per call."""

LISTEN_TIMEOUT = 5.0
"""Seconds the listener waits for a message before it looks again (so a lost
connection is noticed)."""


class RedisCluster:
    """The scripts of cluster mode over one Redis, under a store's key prefix
    (``timeout``: seconds allowed per command, as for PostgreSQL)."""

    errors = ERRORS

    def __init__(self, store: RedisStore, *, timeout: float = 10.0) -> None:
        self._store = store
        self.base = f"{store.prefix}cluster:"
        self.channel = f"{self.base}wake"
        self.description = f"cluster over redis {store.where}/{store.db} keys {self.base!r}*"
        self._redis = store.connect(timeout)
        self._lists = RedisLists(self._redis, self.base)
        # With WAIT, submissions go through a client of their own, one at a time:
        # WAIT counts the replicas that have what its one connection wrote.
        self._submitter = store.connect(timeout) if store.wait_replicas else self._redis
        self._submitting = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._identities: list[int] = []  # every server id this process registered
        self._sweep = ""  # the token of the sweep this process holds, if any
        script = self._redis.register_script
        self._submit, self._claim, self._ack, self._progress = (
            script(lua.PRELUDE + s) for s in (lua.SUBMIT, lua.CLAIM, lua.ACK, lua.PROGRESS)
        )
        self._release, self._retry, self._fail = (
            script(lua.PRELUDE + lua.HELD + s) for s in (lua.RELEASE, lua.RETRY, lua.FAIL)
        )
        self._orphans, self._swept = (script(lua.PRELUDE + s) for s in (lua.ORPHANS, lua.SWEPT))
        self._register, self._renew, self._leave = (
            script(lua.PRELUDE + s) for s in (lua.REGISTER, lua.RENEW, lua.LEAVE)
        )
        self._fire, self._cancel = (script(lua.PRELUDE + s) for s in (lua.FIRE, lua.CANCEL))
        self._failed_list, self._retry_failed, self._delete_failed, self._trim_failed = (
            script(lua.PRELUDE + s)
            for s in (lua.FAILED_LIST, lua.RETRY_FAILED, lua.DELETE_FAILED, lua.TRIM_FAILED)
        )
        self._status_unique = script(lua.PRELUDE + lua.STATUS_UNIQUE)
        self._members = script(lua.PRELUDE + lua.MEMBERS)
        self._claimed_by = script(lua.PRELUDE + lua.CLAIMED_BY)

    async def _run(self, script: AsyncScript, *args: Any) -> Any:
        return await script(keys=[self.base], args=args)

    async def _run_replicated(self, script: AsyncScript, *args: Any) -> Any:
        """Run a script that makes jobs (a submission, a schedule's firing): with
        ``wait_replicas``, on the submitters' connection and done once replicated."""
        if not self._store.wait_replicas:
            return await self._run(script, *args)
        async with self._submitting:
            result = await script(keys=[self.base], args=args, client=self._submitter)
            await self._store.replicated(self._submitter)  # acknowledged once replicated
            return result

    async def _fenced(
        self, script: AsyncScript, jobs: Sequence[Sequence[Any]], owners: Sequence[int] = ()
    ) -> Any:
        """Run a script over claimed jobs, behind the fence of their owners: this
        process's server ids, unless ``owners`` are given."""
        fence = owners or self._identities
        return await self._run(script, len(fence), *fence, *(x for job in jobs for x in job))

    # -- life -----------------------------------------------------------------

    @property
    def primary(self) -> str | None:
        """``host:port`` of the master, as Sentinel last named it."""
        return self._store.primary

    async def open(self, on_wake: Callable[[], None]) -> None:
        await self._store.find_master()
        await self._redis.ping()
        await self._store.check_persistence(self._redis)
        await self.listen(on_wake)

    async def listen(self, on_wake: Callable[[], None]) -> None:
        """Subscribe on a connection of its own; the task ends when it is lost."""
        await self._close_listener()
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self.channel)
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            raise
        self._listener = asyncio.get_running_loop().create_task(self._listen(pubsub, on_wake))

    async def _listen(self, pubsub: PubSub, on_wake: Callable[[], None]) -> None:
        try:
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=LISTEN_TIMEOUT
                )
                if message is not None:
                    on_wake()
        except ERRORS as error:
            log.warning("Cluster wake-up channel lost: %s", error)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.done()

    async def _close_listener(self) -> None:
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        await self._close_listener()
        await self._redis.aclose()
        if self._submitter is not self._redis:
            await self._submitter.aclose()

    # -- leases ---------------------------------------------------------------

    async def register(self, name: str, ttl: float) -> int:
        # Random rather than counted: a Redis that lost writes would count again
        # from an older value and hand a live server's id to another.
        while True:
            server = secrets.randbelow(ID_RANGE) + 1
            if await self._run(self._register, server, name, round(ttl * 1000)):
                self._identities.append(server)
                return server

    async def renew(self, server: int, ttl: float) -> bool:
        try:
            return bool(await self._run(self._renew, server, round(ttl * 1000)))
        except ERRORS:
            await self._store.follow_master()  # the heartbeat notices a failover first
            raise

    async def leave(self, server: int) -> None:
        await self._run(self._leave, server)

    async def orphans(self, ttl: float) -> tuple[list[int], list[Orphan]] | None:
        token = secrets.token_hex(8)
        found = await self._run(self._orphans, token, round(ttl * 1000))
        if not found:
            return None
        self._sweep = token
        dead, rows = found
        return [int(s) for s in dead], [
            Orphan(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6].decode(), r[7].decode())
            for r in rows
        ]

    async def swept(self, dead: Sequence[int]) -> None:
        token, self._sweep = self._sweep, ""
        await self._run(self._swept, token, *dead)

    # -- jobs -----------------------------------------------------------------

    async def submit(self, jobs: Sequence[Submission], prefix: bytes) -> list[tuple[int, bytes]]:
        args: list[bytes | int] = [prefix]
        for s in jobs:
            key = coalesce_key(s.unique, s.data) or b""
            args += (s.function, s.unique, key, s.priority, s.when, s.reducer, s.data)
            args += (s.retry.encode(), repr(s.keep).encode() if s.keep else b"")
        flat = await self._run_replicated(self._submit, *args)
        return [(int(flat[i]), bytes(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def claim(self, server: int, wants: Sequence[tuple[bytes, int]]) -> list[Claimed]:
        rows = await self._run(self._claim, server, *(x for want in wants for x in want))
        return [
            Claimed._make([*row[:-3], row[-3].decode(), row[-2].decode(), float(row[-1])])
            for row in rows
        ]

    async def claimed(self, server: int) -> list[tuple[int, int, int]]:
        rows = await self._run(self._claimed_by, server)
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]

    async def ack(self, done: Sequence[tuple[int, int]], owners: Sequence[int] = ()) -> set[int]:
        return set(await self._fenced(self._ack, done, owners))

    async def release(self, jobs: Sequence[tuple[int, int, int]]) -> None:
        await self._fenced(self._release, jobs)

    async def progress(self, jobs: Sequence[tuple[int, int, int, int]]) -> None:
        await self._run(self._progress, *(x for j in jobs for x in j))

    async def retry(self, jobs: Sequence[Retry], owners: Sequence[int] = ()) -> None:
        await self._fenced(self._retry, jobs, owners)

    async def fail(self, jobs: Sequence[Failure], owners: Sequence[int] = ()) -> None:
        await self._fenced(self._fail, jobs, owners)

    async def fire(self, key: bytes, job: Submission, prefix: bytes) -> int | None:
        args = (key, job.function, job.priority, prefix, job.reducer, job.data)
        job_id = await self._run_replicated(self._fire, *args)
        return None if job_id is None else int(job_id)

    async def cancel(self, job_id: int, prefix: bytes) -> bool | None:
        done = await self._run(self._cancel, job_id, prefix)
        return None if done < 0 else bool(done)

    # -- the failed-job set -------------------------------------------------------

    async def failed_jobs(
        self, job_id: int | None = None, prefix: bytes | None = None, function: bytes | None = None
    ) -> list[FailedJob]:
        # Read a page per script, not all in one: a listing need not be atomic,
        # and Redis stays free for the claims meanwhile.
        found: list[list[Any]] = []
        for page in await self._failed_pages(job_id):
            found += await self._run(self._failed_list, *_chosen(prefix, function), *page)
        # Oldest first; within a millisecond in id order, as on PostgreSQL.
        found.sort(key=lambda row: (int(row[7]), row[0]))
        return [_failed_record(*row) for row in found]

    async def retry_failed(
        self, job_id: int | None = None, prefix: bytes | None = None, function: bytes | None = None
    ) -> int:
        return await self._each_failed(self._retry_failed, job_id, prefix, function)

    async def delete_failed(
        self, job_id: int | None = None, prefix: bytes | None = None, function: bytes | None = None
    ) -> int:
        return await self._each_failed(self._delete_failed, job_id, prefix, function)

    async def _failed_pages(self, job_id: int | None) -> list[list[bytes | int]]:
        """The failed set's ids (or ``job_id``), oldest first, in pages of 1000."""
        if job_id is not None:
            return [[job_id]]
        ids = cast(list[bytes | int], await self._redis.zrange(f"{self.base}failed", 0, -1))
        return [ids[i : i + FAILED_PAGE] for i in range(0, len(ids), FAILED_PAGE)]

    async def _each_failed(
        self, script: AsyncScript, job_id: int | None, prefix: bytes | None, function: bytes | None
    ) -> int:
        """Run a script over the chosen failed jobs, a page per call: each job is
        moved atomically, the whole selection is not."""
        done = 0
        for page in await self._failed_pages(job_id):
            done += int(await self._run(script, *_chosen(prefix, function), *page))
        return done

    async def trim_failed(self, max_jobs: int, max_age: float) -> int:
        dropped = 0
        while True:
            n = int(await self._run(self._trim_failed, max_jobs, max_age))
            dropped += n
            if n < FAILED_PAGE:
                return dropped

    async def failed_counts(self) -> dict[bytes, int]:
        counts = cast(dict[bytes, bytes], await self._redis.hgetall(f"{self.base}failed:count"))
        return {name: int(n) for name, n in counts.items()}

    # -- paused functions -------------------------------------------------------

    async def paused(self) -> list[bytes]:
        return sorted(cast(set[bytes], await self._redis.smembers(f"{self.base}paused")))

    async def set_paused(self, name: bytes, paused: bool) -> None:
        change = self._redis.sadd if paused else self._redis.srem
        await change(f"{self.base}paused", name)

    # -- kept results ---------------------------------------------------------------

    def _result_key(self, handle: bytes) -> bytes:
        return f"{self.base}result:".encode() + handle

    async def write_results(self, added: Sequence[KeptResult], removed: Sequence[bytes]) -> None:
        """Each result is a hash that Redis expires itself (PEXPIREAT)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            if removed:
                pipe.delete(*(self._result_key(h) for h in removed))
            for r in added:
                key = self._result_key(r.handle)
                pipe.delete(key)
                pipe.hset(
                    key,
                    mapping={
                        "function": r.function,
                        "status": r.status,
                        "data": r.data,
                        "keep": repr(r.keep),
                        "ended_at": repr(r.ended_at),
                    },
                )
                pipe.pexpireat(key, math.ceil(r.expires_at * 1000))
            await pipe.execute()

    async def result(self, handle: bytes) -> KeptResult | None:
        row = await self._redis.hmget(
            self._result_key(handle), ["function", "status", "data", "keep", "ended_at"]
        )
        function, status, data, keep, ended_at = cast(list[bytes | None], row)
        if function is None or status is None or data is None:
            return None
        return KeptResult(
            handle, function, status.decode(), data, float(keep or 0), float(ended_at or 0)
        )

    async def trim_results(self, now: float) -> int:
        return 0  # Redis expires them

    # -- status -----------------------------------------------------------------

    async def status(self, job_id: int) -> tuple[bytes, State, int, int] | None:
        row = await self._redis.hmget(f"{self.base}job:{job_id}", ["prefix", "state", "num", "den"])
        prefix, state, num, den = cast(list[bytes | None], row)
        if prefix is None:
            return None
        return prefix, State(int(state or 0)), int(num or 0), int(den or 0)

    async def status_unique(self, unique: bytes) -> tuple[State, int, int] | None:
        row = await self._run(self._status_unique, unique)
        if not row:
            return None
        state, num, den = row
        return State(int(state or 0)), int(num or 0), int(den or 0)

    async def queues(self) -> list[tuple[bytes, int, int]]:
        async with self._redis.pipeline(transaction=True) as pipe:  # MULTI: one snapshot
            pipe.hgetall(f"{self.base}total")
            pipe.hgetall(f"{self.base}running")
            total, running = await pipe.execute()
        return [(name, int(n), int(running.get(name, 0))) for name, n in sorted(total.items())]

    async def members(self) -> list[tuple[int, str, float, float, int]]:
        now, *rows = await self._run(self._members)
        return [
            (
                server,
                bytes(name).decode(errors="replace"),
                (now - started) / 1000,
                (expires - now) / 1000,
                owned,
            )
            for server, name, started, expires, owned in rows
        ]

    # -- the console's lists ------------------------------------------------------

    async def list_jobs(self, query: SharedQuery) -> tuple[int, bool, list[SharedJob]]:
        return await self._lists.list_jobs(query)

    async def job(self, job_id: int, prefix: bytes, preview: int) -> SharedJob | None:
        return await self._lists.job(job_id, prefix, preview)


def _chosen(prefix: bytes | None, function: bytes | None) -> list[bytes]:
    """Which failed jobs, as the scripts read it (see ``chosen``)."""
    return [b"" if v is None else b"=" + v for v in (prefix, function)]


def _failed_record(
    job_id: int,
    prefix: bytes,
    function: bytes,
    unique: bytes,
    data: bytes,
    priority: bytes,
    failures: bytes,
    at: bytes,
    reason: bytes,
    outcomes: bytes,
) -> FailedJob:
    """A failed job as the list script gives it (the time in ms)."""
    return FailedJob(
        cluster_handle(prefix, job_id),
        function,
        unique,
        data,
        int(priority),
        int(failures),
        int(at) / 1000,
        reason.decode(errors="replace"),
        decode_outcomes(outcomes),
    )
