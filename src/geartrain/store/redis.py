"""Redis queue (redis-py's asyncio client), gearmand's ``-q redis``.

Layout under the key prefix (gearmand's ``--redis-prefix``, default
``_gear_``): a hash ``<prefix>job:<id>`` per job with the fields function,
unique, data, priority and when, and a sorted set ``<prefix>jobs`` of the ids
(score = id), which gives the order for loading without walking the keyspace.

A write is one MULTI/EXEC.  Before it, the ids being added are checked
against the sorted set under WATCH, so adding an id that is already stored
fails as it does in the SQL backends (and a second server sharing the prefix
is noticed instead of silently overwriting jobs).

How durable a returned write is depends on Redis: only ``appendonly yes``
with ``appendfsync always`` survives power loss; ``everysec`` may lose the
last second; without the AOF a Redis crash loses everything since the last
snapshot.  Open logs a warning when the server is set up for less.

With ``sentinels`` the store asks Redis Sentinel where the master of
``service`` is, on every new connection, so after a failover it writes to the
promoted replica; a connection that finds its server demoted to a replica
counts as lost.  Replication is asynchronous: a write the master acknowledged
may not have reached the replica that Sentinel promotes.  ``wait_replicas``
closes that window: after each write the store sends ``WAIT`` and reports a
failure (the submitters get ``QUEUE_ERROR``) unless that many replicas have
the write within ``wait_timeout_ms``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from . import StoredJob, StoreError
from .durability import DEFAULT, Durability
from .names import REDIS_PREFIX
from .reconnect import driver_error, once_more_if_lost
from .records import FailedJob, KeptResult, decode_outcomes, encode_outcomes

__all__ = ["DEFAULT_PREFIX", "RedisStore"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_PREFIX = REDIS_PREFIX
"""gearmand's ``--redis-prefix`` default."""

_FIELDS = (
    "function",
    "unique",
    "data",
    "priority",
    "when",
    "handle",
    "attempts",
    "outcomes",
    "retry",
)
_RESULT_FIELDS = ("handle", "function", "status", "data", "keep", "ended_at")
_FAILED_FIELDS = (
    "handle",
    "function",
    "unique",
    "data",
    "priority",
    "attempts",
    "failed_at",
    "reason",
    "outcomes",
)
_LOAD_CHUNK = 1000
_ERRORS = (RedisError, OSError)


def _lost(exc: Exception) -> bool:
    return isinstance(exc, RedisConnectionError | ConnectionError)


class RedisStore:
    """A queue in Redis keys under a prefix.

    Args:
        host, port, password: where to connect (gearmand's ``--redis-server``,
            ``--redis-port``, ``--redis-password``).
        prefix: prefix of every key (``--redis-prefix``).
        db: the database number.
        username: for Redis 6 ACLs; gearmand has no such option.
        timeout: seconds allowed for each command.
        connect_timeout: seconds allowed to connect.
        durability: the level to check Redis's persistence settings against.
        sentinels: (host, port) of Redis Sentinels; then ``service`` names the
            master they watch, and ``host``/``port`` are not used.
        wait_replicas: after each write, ``WAIT`` for this many replicas.
        wait_timeout_ms: how long ``WAIT`` may take.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        password: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        *,
        db: int = 0,
        username: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        durability: Durability = DEFAULT,
        sentinels: Sequence[tuple[str, int]] = (),
        service: str = "mymaster",
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        self.durability = durability
        self.host, self.port, self.db, self.prefix = host, port, db, prefix
        self.sentinels, self.service = list(sentinels), service
        self.wait_replicas, self.wait_timeout_ms = wait_replicas, wait_timeout_ms
        self.primary: str | None = None if sentinels else f"{host}:{port}"
        """``host:port`` of the master (as Sentinel last named it), once known."""
        self._options = {
            "password": password or None,
            "username": username or None,
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
        }
        self._index = f"{prefix}jobs"
        self._failed_index = f"{prefix}failed"  # sorted set of handles, score = failed_at
        self._paused = f"{prefix}paused"  # set of paused function names
        self._results_index = f"{prefix}results"  # sorted set of handles, score = when kept
        self._redis: aioredis.Redis | None = None
        # Calls take turns, so the client holds a single connection: WAIT counts
        # the replicas that have what *its* connection wrote.
        self._turn = asyncio.Lock()

    def __str__(self) -> str:
        return f"redis {self.where}/{self.db} prefix {self.prefix!r}"

    @property
    def where(self) -> str:
        """The server, or the master's name and its sentinels."""
        if not self.sentinels:
            return f"{self.host}:{self.port}"
        return f"sentinel {','.join(f'{h}:{p}' for h, p in self.sentinels)} {self.service}"

    def _key(self, job_id: int | bytes) -> str:
        return f"{self.prefix}job:{int(job_id)}"

    async def open(self) -> None:
        """Connect, and warn if Redis is not set up to keep writes on disk."""
        if self._redis is not None:
            return
        self._redis = self.connect()
        try:
            await self.find_master()
            await self._redis.ping()
            await self.check_persistence(self._redis)
        except _ERRORS as exc:
            await self.close()
            raise driver_error(self, exc) from exc

    def connect(self, timeout: float | None = None) -> aioredis.Redis:
        """A client (a pool of connections) to this store's Redis; ``timeout``
        replaces the store's seconds allowed per command."""
        options = dict(self._options)
        if timeout is not None:
            options["socket_timeout"] = timeout
        # One attempt per call: the caller decides about retrying, and a
        # silently repeated EXEC could apply a batch twice.
        if self.sentinels:
            master = self._sentinel().master_for(
                self.service,
                redis_class=aioredis.Redis,
                db=self.db,
                retry=Retry(NoBackoff(), 0),
                client_name="geartrain",
                **cast(dict[str, Any], options),
            )
            return cast(aioredis.Redis, master)
        return aioredis.Redis(
            host=self.host,
            port=self.port,
            db=self.db,
            retry=Retry(NoBackoff(), 0),
            client_name="geartrain",
            **options,  # type: ignore[arg-type]
        )

    def _sentinel(self) -> Sentinel:
        timeouts = {k: v for k, v in self._options.items() if k.startswith("socket_")}
        return Sentinel(self.sentinels, sentinel_kwargs=timeouts)

    async def find_master(self) -> None:
        """Ask the sentinels where the master is now (:attr:`primary`, logged when
        it changes); nothing to ask without sentinels."""
        if not self.sentinels:
            return
        sentinel = self._sentinel()
        try:
            host, port = await sentinel.discover_master(self.service)
        finally:
            for client in sentinel.sentinels:
                await client.aclose()
        address = f"{host}:{port}"
        if address != self.primary:
            if self.primary is not None:
                log.warning("%s: writing to %s now (was %s)", self, address, self.primary)
            self.primary = address

    async def replicated(self, client: aioredis.Redis) -> None:
        """``WAIT`` for the replicas asked for, if any.  ``client`` must be the one
        that wrote, with no other call on it since (a connection of its own).

        Raises:
            StoreError: fewer replicas had the write in time.
        """
        if not self.wait_replicas:
            return
        have = await client.execute_command(  # type: ignore[no-untyped-call]
            "WAIT", self.wait_replicas, self.wait_timeout_ms
        )
        if int(have) < self.wait_replicas:
            raise StoreError(
                f"{self}: the write reached {have} of {self.wait_replicas} replica(s)"
                f" within {self.wait_timeout_ms} ms"
            )

    async def check_persistence(self, client: aioredis.Redis) -> None:
        """Warn if Redis is set up to keep writes on disk less well than asked."""
        try:
            config = await client.config_get("append*")
        except RedisError as exc:  # CONFIG may be renamed away on managed servers
            log.info("%s: cannot read the persistence settings (%s)", self, exc)
            return
        settings = {_str(k): _str(v) for k, v in cast(dict[bytes, bytes], config).items()}
        aof, fsync = settings.get("appendonly"), settings.get("appendfsync")
        if aof != "yes":
            log.warning(
                "%s: appendonly is %s, so queued jobs are lost if Redis itself crashes;"
                " set appendonly yes and appendfsync always for durable jobs",
                self,
                aof,
            )
        elif fsync == "no" or (fsync != "always" and self.durability is Durability.POWER):
            log.warning(
                "%s: appendfsync is %s, so the last %s of jobs may be lost on power loss",
                self,
                fsync,
                "second" if fsync == "everysec" else "30 seconds or so",
            )

    async def load(self) -> list[StoredJob]:
        """Every stored job in ascending id order, read in chunks of the sorted set."""
        client = self._client()
        return await self._retried(lambda: self._load(client))

    async def _load(self, client: aioredis.Redis) -> list[StoredJob]:
        jobs: list[StoredJob] = []
        missing = 0
        low = "-inf"
        while True:
            ids = cast(
                list[bytes],
                await client.zrange(
                    self._index, low, "+inf", byscore=True, offset=0, num=_LOAD_CHUNK
                ),
            )
            if not ids:
                break
            pipe = client.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self._key(job_id), _FIELDS)
            for job_id, row in zip(ids, await pipe.execute(), strict=True):
                fn, uniq, data, prio, when, handle, attempts, outcomes, retry = row
                if fn is None:
                    missing += 1
                    continue
                jobs.append(
                    StoredJob(
                        int(job_id),
                        fn,
                        uniq or b"",
                        data or b"",
                        int(prio),
                        int(when),
                        handle or b"",
                        int(attempts or 0),
                        (outcomes or b"").decode(),
                        (retry or b"").decode(),
                    )
                )
            low = f"({int(ids[-1])}"
        if missing:
            log.warning("%s: %d ids in %s had no job hash; skipped", self, missing, self._index)
        return jobs

    async def write(self, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        """Store ``added`` and delete ``done`` in one MULTI/EXEC."""
        client = self._client()
        if not added and not done:
            return
        again = iter((False, True))
        await self._retried(lambda: self._write(client, added, done, next(again)))

    async def _write(
        self, client: aioredis.Redis, added: Sequence[StoredJob], done: Sequence[int], again: bool
    ) -> None:
        if len({j.id for j in added}) != len(added):
            raise StoreError(f"{self}: the same job id twice in one write")
        async with client.pipeline(transaction=True) as pipe:
            if added:
                await pipe.watch(self._index)
                scores = await pipe.zmscore(self._index, [str(j.id) for j in added])
                taken = [j.id for j, s in zip(added, scores, strict=True) if s is not None]
                if taken and again:
                    # The lost attempt's EXEC went through: ids are never reused.
                    added = [j for j in added if j.id not in taken]
                elif taken:
                    raise StoreError(f"{self}: job ids already stored: {taken[:5]}")
                pipe.multi()  # type: ignore[no-untyped-call]
                for j in added:
                    pipe.hset(
                        self._key(j.id),
                        mapping={
                            "function": j.function,
                            "unique": j.unique,
                            "data": j.data,
                            "priority": j.priority,
                            "when": j.when,
                            **_retry_fields(j),
                        },
                    )
                if added:
                    pipe.zadd(self._index, {str(j.id): j.id for j in added})
            if done:
                pipe.delete(*(self._key(i) for i in done))
                pipe.zrem(self._index, *(str(i) for i in done))
            await pipe.execute()
            if added:  # what a failover must not lose (a deletion lost runs a job again)
                await self.replicated(client)

    def _failed_key(self, handle: bytes) -> bytes:
        return self.prefix.encode() + b"failed:" + handle

    async def load_failed(self) -> list[FailedJob]:
        """The failed-job set, oldest first."""
        client = self._client()
        try:
            async with self._turn:
                handles = cast(list[bytes], await client.zrange(self._failed_index, 0, -1))
                pipe = client.pipeline(transaction=False)
                for handle in handles:
                    pipe.hmget(self._failed_key(handle), _FAILED_FIELDS)
                rows = await pipe.execute()
        except _ERRORS as exc:
            raise driver_error(self, exc) from exc
        return [
            FailedJob(h, f, u, d, int(p), int(a), float(t), r.decode(), decode_outcomes(o))
            for h, f, u, d, p, a, t, r, o in rows
            if h is not None
        ]

    async def write_failed(self, added: Sequence[FailedJob], removed: Sequence[bytes]) -> None:
        """Store ``added`` (replacing records of the same handle) and delete ``removed``."""
        if not added and not removed:
            return
        client = self._client()
        try:
            async with self._turn:
                async with client.pipeline(transaction=True) as pipe:
                    if removed:
                        pipe.delete(*(self._failed_key(h) for h in removed))
                        pipe.zrem(self._failed_index, *removed)
                    for r in added:
                        pipe.hset(
                            self._failed_key(r.handle),
                            mapping={
                                "handle": r.handle,
                                "function": r.function,
                                "unique": r.unique,
                                "data": r.data,
                                "priority": r.priority,
                                "attempts": r.attempts,
                                "failed_at": repr(r.failed_at),
                                "reason": r.reason,
                                "outcomes": encode_outcomes(r.outcomes),
                            },
                        )
                    if added:
                        pipe.zadd(self._failed_index, {r.handle: r.failed_at for r in added})
                    await pipe.execute()
                await self.replicated(client)
        except _ERRORS as exc:
            raise driver_error(self, exc) from exc

    async def check(self) -> None:
        """Raise StoreError unless the master answers."""
        await self._retried(lambda: self._client().ping())

    async def load_paused(self) -> list[bytes]:
        """The paused function names."""
        try:
            async with self._turn:
                names = cast(set[bytes], await self._client().smembers(self._paused))
        except _ERRORS as exc:
            raise driver_error(self, exc) from exc
        return sorted(names)

    async def save_paused(self, name: bytes, paused: bool) -> None:
        """Keep ``name`` paused or not (a member of one set)."""
        client = self._client()
        try:
            async with self._turn:
                await (client.sadd if paused else client.srem)(self._paused, name)
        except _ERRORS as exc:
            raise driver_error(self, exc) from exc

    def _result_key(self, handle: bytes) -> bytes:
        return self.prefix.encode() + b"result:" + handle

    async def load_results(self) -> list[KeptResult]:
        """The kept results, oldest first."""
        client = self._client()
        try:
            async with self._turn:
                handles = cast(list[bytes], await client.zrange(self._results_index, 0, -1))
                pipe = client.pipeline(transaction=False)
                for handle in handles:
                    pipe.hmget(self._result_key(handle), _RESULT_FIELDS)
                rows = await pipe.execute()
        except _ERRORS as exc:
            raise driver_error(self, exc) from exc
        return [
            KeptResult(h, f, s.decode(), d, float(k), float(e))
            for h, f, s, d, k, e in rows
            if h is not None
        ]

    async def write_results(self, added: Sequence[KeptResult], removed: Sequence[bytes]) -> None:
        """Store ``added`` (replacing records of the same handle) and delete ``removed``."""
        if not added and not removed:
            return
        client = self._client()
        now = time.time()
        try:
            async with self._turn, client.pipeline(transaction=True) as pipe:
                if removed:
                    pipe.delete(*(self._result_key(h) for h in removed))
                    pipe.zrem(self._results_index, *removed)
                for r in added:
                    pipe.hset(
                        self._result_key(r.handle),
                        mapping={
                            "handle": r.handle,
                            "function": r.function,
                            "status": r.status,
                            "data": r.data,
                            "keep": repr(r.keep),
                            "ended_at": repr(r.ended_at),
                        },
                    )
                if added:
                    # The order of keeping (a replaced record goes to the end).
                    order = {r.handle: now + i * 1e-6 for i, r in enumerate(added)}
                    pipe.zadd(self._results_index, order)
                await pipe.execute()
        except _ERRORS as exc:
            raise driver_error(self, exc) from exc

    async def follow_master(self) -> None:
        """After a lost connection: where is the master now (for the log and the
        console; the connection pool asks the sentinels by itself)."""
        try:
            await self.find_master()
        except _ERRORS as exc:
            log.info("%s: no master known (%s)", self, exc)

    async def _retried(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """``call()`` in the store's turn, once more if the connection was lost
        (after looking for the master); its errors as StoreError."""
        try:
            async with self._turn:
                return await once_more_if_lost(call, _lost, self, self.follow_master)
        except _ERRORS as exc:
            raise driver_error(self, exc) from exc

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise StoreError(f"{self}: not open")
        return self._redis

    async def close(self) -> None:
        """Close the connections; safe to call twice."""
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()


def _retry_fields(job: StoredJob) -> dict[Any, Any]:
    """The handle, attempts, outcomes and the submission's retry policy, only when
    there are any (older hashes lack them)."""
    fields: dict[Any, Any] = {"handle": job.handle} if job.handle else {}
    if job.failures:
        fields.update(attempts=job.failures, outcomes=job.outcomes)
    if job.retry:
        fields["retry"] = job.retry
    return fields


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
