"""The console's lists over the cluster's Redis keys (:mod:`.redis_scripts`
describes them): read-only, a page at a time, not one snapshot.

Queued jobs are the ``ready:<function>`` sorted sets, scored priority * 2^50 +
id: a total is ZCOUNT per function (the score range of one priority, or all),
a page is a ZRANGE of it, merged across functions by score, which is the order
members claim them in.  Claimed jobs are the ``owned:<server>`` sets (as many
as members hold for their workers); a unique key is found through ``u:<key>``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Any, Literal, cast, overload

from redis.asyncio import Redis

from ..store.records import SharedJob, SharedQuery, decode_outcomes
from . import cluster_handle
from .states import State

__all__ = ["RedisLists"]

BAND = 1 << 50
"""The score of one priority level (see ``score`` in the scripts)."""
FIELDS = ["prefix", "fn", "uniq", "prio", "data", "state", "owner", "fails", "num", "den", "outs"]
WALK = 2000
"""Offsets up to this are read from the start of each set: cheaper than bisecting."""
WAITING = ("scheduled", "retrying")
"""The states of jobs in the due-time set."""
BATCH = 1000
"""Job hashes read per pipeline."""
CLAIMED = str(int(State.CLAIMED)).encode()


class RedisLists:
    def __init__(self, redis: Redis, base: str) -> None:
        self.redis = redis
        self.base = base.encode()

    def _key(self, *parts: bytes) -> bytes:
        return self.base + b"".join(parts)

    async def list_jobs(self, q: SharedQuery) -> tuple[int, bool, list[SharedJob]]:
        if q.state in WAITING:
            return await self._waiting(q)
        if q.state == "running" or q.unique is not None:
            ids = await (self._claimed_ids() if q.unique is None else self._unique_ids(q.unique))
            jobs = [j for j in await self._jobs(ids, q.preview) if self._wanted(j, q)]
            if q.state == "queued":
                jobs = await self._ready(jobs)
            jobs.sort(key=_rank, reverse=q.newest)
            return len(jobs), True, jobs[q.offset : q.offset + q.limit]
        functions = [q.function] if q.function is not None else await self._functions()
        levels = range(3) if q.priority is None else range(q.priority, q.priority + 1)
        low, high = levels[0] * BAND, levels[-1] * BAND + BAND - 1
        if q.text is None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for fn in functions:
                    pipe.zcount(self._key(b"ready:", fn), low, high)
                total = sum(await pipe.execute())
            ids = await self._page(functions, low, high, total, q.offset, q.limit, q.newest)
            return total, True, await self._jobs(ids, q.preview)
        looked = await self._merged(functions, low, high, q.scan + 1, q.newest)
        found: list[int] = []
        for i in range(0, min(len(looked), q.scan), BATCH):
            chunk = looked[i : i + BATCH]
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in chunk:
                    pipe.hget(self._key(b"job:%d" % job_id), "data")
                datas = await pipe.execute()
            found += [
                job_id
                for job_id, data in zip(chunk, datas, strict=True)
                if data is not None and bytes(data).find(q.text, 0, q.preview) >= 0
            ]
        page = await self._jobs(found[q.offset : q.offset + q.limit], q.preview)
        return len(found), len(looked) <= q.scan, page

    async def job(self, job_id: int, prefix: bytes, preview: int) -> SharedJob | None:
        found = await self._jobs([job_id], preview)
        return found[0] if found and found[0].handle == cluster_handle(prefix, job_id) else None

    async def _waiting(self, q: SharedQuery) -> tuple[int, bool, list[SharedJob]]:
        """Scheduled or retrying jobs: the first ``scan`` of the due-time set read
        and filtered (one set for every function)."""
        key = self._key(b"scheduled")
        due = cast(
            list[tuple[bytes, float]], await self.redis.zrange(key, 0, q.scan, withscores=True)
        )
        looked = due[: q.scan]
        jobs = [
            j._replace(due=when)
            for j, when in zip(
                await self._jobs([int(i) for i, _ in looked], q.preview, keep_missing=True),
                (when for _, when in looked),
                strict=True,
            )
            if j is not None and self._wanted(j, q)
        ]
        if not q.by_due:
            jobs.sort(key=_id, reverse=q.newest)
        return len(jobs), len(due) <= q.scan, jobs[q.offset : q.offset + q.limit]

    @staticmethod
    def _wanted(job: SharedJob, q: SharedQuery) -> bool:
        return (
            job.claimed is (q.state == "running")
            and (q.state not in WAITING or bool(job.failures) is (q.state == "retrying"))
            and (q.function is None or job.function == q.function)
            and (q.priority is None or job.priority == q.priority)
            and (q.unique is None or job.unique == q.unique)
            and (q.text is None or job.data.find(q.text, 0, q.preview) >= 0)
        )

    async def _functions(self) -> list[bytes]:
        return sorted(cast(list[bytes], await self.redis.hkeys(self._key(b"total"))))

    async def _claimed_ids(self) -> list[int]:
        servers = cast(list[bytes], await self.redis.zrange(self._key(b"servers"), 0, -1))
        async with self.redis.pipeline(transaction=False) as pipe:
            for server in servers:
                pipe.smembers(self._key(b"owned:", server))
            owned: list[set[bytes]] = await pipe.execute()
        return sorted({int(i) for ids in owned for i in ids})

    async def _unique_ids(self, unique: bytes) -> list[int]:
        ids = cast(dict[bytes, bytes], await self.redis.hgetall(self._key(b"u:", unique)))
        return sorted(int(i) for i in ids.values())

    async def _ready(self, jobs: list[SharedJob]) -> list[SharedJob]:
        """Those of the unclaimed jobs that are queued (not waiting for a due time)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for j in jobs:
                pipe.zscore(self._key(b"ready:", j.function), j.handle.rpartition(b":c")[2])
            scores = await pipe.execute()
        return [j for j, score in zip(jobs, scores, strict=True) if score is not None]

    async def _page(
        self,
        functions: Sequence[bytes],
        low: int,
        high: int,
        total: int,
        offset: int,
        limit: int,
        newest: bool,
    ) -> list[int]:
        """Ids ``offset`` to ``offset + limit`` of the ready sets merged in claim
        order (or its reverse): a short walk near either end; deeper, the score at
        that rank, found by bisection, and a range from it."""
        if offset >= total:
            return []
        if newest and offset > WALK:
            # The newest-first page is an oldest-first page counted from the other end.
            start = max(0, total - offset - limit)
            ids = await self._page(
                functions, low, high, total, start, total - offset - start, False
            )
            ids.reverse()
            return ids
        if offset <= WALK or len(functions) == 1:
            if len(functions) == 1:
                return await self._range(functions[0], low, high, offset, limit, newest)
            return (await self._merged(functions, low, high, offset + limit, newest))[offset:]
        # The highest score with at most `offset` ids below it: the score at that
        # rank (scores are distinct integers).
        lo, hi = low, high + 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            async with self.redis.pipeline(transaction=False) as pipe:
                for fn in functions:
                    pipe.zcount(self._key(b"ready:", fn), low, f"({mid}")
                below = sum(await pipe.execute())
            if below <= offset:
                lo = mid
            else:
                hi = mid
        async with self.redis.pipeline(transaction=False) as pipe:
            for fn in functions:
                pipe.zcount(self._key(b"ready:", fn), low, f"({lo}")
            skip = offset - sum(await pipe.execute())
        return (await self._merged(functions, lo, high, skip + limit, False))[skip:]

    async def _range(
        self, function: bytes, low: int, high: int, offset: int, limit: int, newest: bool
    ) -> list[int]:
        key = self._key(b"ready:", function)
        if newest:
            found = await self.redis.zrevrangebyscore(key, high, low, start=offset, num=limit)
        else:
            found = await self.redis.zrangebyscore(key, low, high, start=offset, num=limit)
        return [int(i) for i in cast(list[bytes], found)]

    async def _merged(
        self, functions: Sequence[bytes], low: int, high: int, count: int, newest: bool
    ) -> list[int]:
        """The first ``count`` ids of the functions' ready sets in the score range,
        in claim order (or its reverse), merged."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for fn in functions:
                key = self._key(b"ready:", fn)
                if newest:
                    pipe.zrevrangebyscore(key, high, low, start=0, num=count, withscores=True)
                else:
                    pipe.zrangebyscore(key, low, high, start=0, num=count, withscores=True)
            ranges: list[list[tuple[bytes, float]]] = await pipe.execute()
        merged: Iterable[tuple[bytes, float]] = (
            ranges[0] if len(ranges) == 1 else heapq.merge(*ranges, key=_score, reverse=newest)
        )
        return [int(member) for member, _ in list(merged)[:count]]

    @overload
    async def _jobs(self, ids: Sequence[int], preview: int) -> list[SharedJob]: ...

    @overload
    async def _jobs(
        self, ids: Sequence[int], preview: int, keep_missing: Literal[True]
    ) -> list[SharedJob | None]: ...

    async def _jobs(
        self, ids: Sequence[int], preview: int, keep_missing: bool = False
    ) -> list[SharedJob] | list[SharedJob | None]:
        """The jobs of these ids that still exist, in order (None in the place of
        one that does not, with ``keep_missing``)."""
        out: list[Any] = []
        for i in range(0, len(ids), BATCH):
            chunk = ids[i : i + BATCH]
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in chunk:
                    pipe.hmget(self._key(b"job:%d" % job_id), FIELDS)
                rows: list[list[Any]] = await pipe.execute()
            found = zip(chunk, rows, strict=True)
            out += [
                _job(job_id, row, preview) if row[1] else None
                for job_id, row in found
                if row[1] or keep_missing
            ]
        return out


def _score(entry: tuple[bytes, float]) -> float:
    return entry[1]


def _id(job: SharedJob) -> int:
    return int(job.handle.rpartition(b":c")[2])


def _rank(job: SharedJob) -> tuple[int, int]:
    return job.priority, _id(job)


def _job(job_id: int, row: list[Any], preview: int) -> SharedJob:
    prefix, fn, uniq, prio, data, state, owner, fails, num, den, outs = row
    claimed = state == CLAIMED
    return SharedJob(
        cluster_handle(prefix or b"", job_id),
        fn,
        uniq or b"",
        int(prio or 0),
        (data or b"")[:preview],
        len(data or b""),
        claimed,
        0.0,
        int(owner) if claimed and owner else 0,
        int(fails or 0),
        int(num or 0),
        int(den or 0),
        decode_outcomes(outs),
    )
