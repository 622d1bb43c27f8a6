"""The cluster's shared state in Redis: jobs, server leases, claims, fenced acks,
retries, the failed-job set and schedules' firings.

Keys under ``<prefix>cluster:`` (``--redis-prefix``, default ``_gear_``):

- ``job:<id>``: a hash per job (function, unique key, data, priority, state
  0 queued or 2 running, owner, attempt, retries, failures, outcomes,
  progress, handle prefix);
- ``ready:<function>``: a sorted set of queued ids, scored priority * 2^50 + id,
  so ZPOPMIN takes the highest priority first and the oldest within it;
- ``scheduled``: epoch jobs and retries by due time (epoch seconds), moved to
  ``ready:`` by claims;
- ``u:<key>``: a hash from function to the id of the job with that unique key
  (the cluster-wide coalescing index);
- ``servers``: a sorted set of server ids scored by the lease's expiry (ms,
  Redis's clock); ``server:<id>``: its name and start; ``owned:<id>``: the
  ids it claimed and has not acknowledged;
- ``total`` and ``running``: hashes of counts per function, for ``status``;
- ``failed``: the failed set's ids by the time they failed (ms);
  ``failed:<id>``: a failed job; ``failed:count``: their counts per function;
- ``fired:<key>``: a schedule's firing, expiring after a day;
- ``seq``: the job id counter; ``wake``: the pub/sub channel.

Every operation that changes more than one key is one Lua script (EVALSHA),
so a batch is atomic and costs one round trip; Redis's clock decides leases
and due times.  Keys carry no hash tag: one Redis primary at one address, not
a sharded Redis Cluster.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any, cast

from redis.asyncio.client import PubSub
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from ..store.records import FailedJob, decode_outcomes
from ..store.redis import RedisStore
from . import Claimed, Failure, Retry, Submission, cluster_handle, coalesce_key

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

# Helpers every script starts with.  K is the key prefix; ids arrive and are
# compared as strings.  Counts, owned-set changes and newly queued ids are
# gathered per script and applied once (settle), not per job, with one wake-up
# hint if anything was queued.  Fields still at zero are not stored.
_PRELUDE = """
local K = KEYS[1]
local counts = {total = {}, running = {}, ['failed:count'] = {}}
local nfailed = counts['failed:count']
local unowned, queued = {}, {}
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function score(prio, id) return tonumber(prio) * 1125899906842624 + tonumber(id) end
local function bump(t, key, by) t[key] = (t[key] or 0) + by end
local function append(t, key, ...)
  local list = t[key]
  if not list then list = {}; t[key] = list end
  for _, v in ipairs({...}) do list[#list + 1] = v end
end
local function chunked(cmd, key, list)
  for i = 1, #list, 1000 do redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list))) end
end
local function settle()
  for fn, ids in pairs(queued) do chunked('ZADD', K .. 'ready:' .. fn, ids) end
  for hash, deltas in pairs(counts) do
    for fn, by in pairs(deltas) do
      if by ~= 0 and redis.call('HINCRBY', K .. hash, fn, by) <= 0 then
        redis.call('HDEL', K .. hash, fn)
      end
    end
  end
  for owner, ids in pairs(unowned) do chunked('SREM', K .. 'owned:' .. owner, ids) end
  if next(queued) then redis.call('PUBLISH', K .. 'wake', '') end
end
-- This process's server ids lead ARGV (how many, then the ids): a job running
-- under any other owner is not this process's to change.
local function fence()
  local mine, n = {}, tonumber(ARGV[1])
  for i = 2, n + 1 do mine[ARGV[i]] = true end
  return mine, n + 2
end
-- A job enters the queue: ready now, or at epoch second ``due``.
local function insert(id, fn, uniq, ckey, prio, prefix, reducer, data, due, ...)
  redis.call('HSET', K .. 'job:' .. id, 'fn', fn, 'uniq', uniq, 'ckey', ckey, 'prio', prio,
    'prefix', prefix, 'reducer', reducer, 'data', data, ...)
  if ckey ~= '' then redis.call('HSET', K .. 'u:' .. ckey, fn, id) end
  bump(counts.total, fn, 1)
  if due then redis.call('ZADD', K .. 'scheduled', due, id)
  else append(queued, fn, score(prio, id), id) end
end
local function forget(id, fn, ckey, state, owner)
  redis.call('DEL', K .. 'job:' .. id)
  bump(counts.total, fn, -1)
  if state == '2' then
    bump(counts.running, fn, -1)
    append(unowned, owner, id)
  else
    redis.call('ZREM', K .. 'ready:' .. fn, id)
    redis.call('ZREM', K .. 'scheduled', id)
  end
  if ckey and ckey ~= '' and redis.call('HGET', K .. 'u:' .. ckey, fn) == id then
    redis.call('HDEL', K .. 'u:' .. ckey, fn)
  end
end
-- A running job is queued again (at epoch second ``due`` if given), its
-- progress cleared; the extra arguments are fields to set.
local function requeue(id, fn, owner, prio, due, ...)
  redis.call('HSET', K .. 'job:' .. id, 'state', 0, 'owner', '', 'num', 0, 'den', 0, ...)
  bump(counts.running, fn, -1)
  append(unowned, owner, id)
  if due then redis.call('ZADD', K .. 'scheduled', due, id)
  else append(queued, fn, score(prio, id), id) end
end
local function drop_failed(id, fn)
  redis.call('DEL', K .. 'failed:' .. id)
  redis.call('ZREM', K .. 'failed', id)
  bump(nfailed, fn, -1)
end
-- A job moves to the failed set (``failed:<id>``, ``failed`` by time in ms).
local function keep_failed(id, failures, outcomes, reason, at)
  local j = redis.call('HMGET', K .. 'job:' .. id, 'fn', 'uniq', 'ckey', 'prio', 'att',
    'prefix', 'reducer', 'data', 'state', 'owner')
  forget(id, j[1], j[3], j[9], j[10])
  local key = K .. 'failed:' .. id
  local old = redis.call('HGET', key, 'fn')
  if old then drop_failed(id, old) end  -- an id handed out again after Redis lost writes
  redis.call('HSET', key, 'fn', j[1], 'uniq', j[2], 'ckey', j[3], 'prio', j[4], 'att', j[5] or 0,
    'prefix', j[6], 'reducer', j[7], 'data', j[8], 'fails', failures, 'outs', outcomes,
    'reason', reason, 'at', at)
  redis.call('ZADD', K .. 'failed', at, id)
  bump(nfailed, j[1], 1)
end
-- The failed ids among ARGV[3 ..] that match ARGV[1] (handle prefix) and
-- ARGV[2] (function), each '=' .. value or '' for any.
local function chosen()
  local function want(a) if a ~= '' then return string.sub(a, 2) end end
  local prefix, fn = want(ARGV[1]), want(ARGV[2])
  local out = {}
  for i = 3, #ARGV do
    local f = redis.call('HMGET', K .. 'failed:' .. ARGV[i], 'fn', 'prefix')
    if f[1] and (not prefix or f[2] == prefix) and (not fn or f[1] == fn) then
      out[#out + 1] = ARGV[i]
    end
  end
  return out
end
"""

# ARGV: handle prefix, then (function, unique, coalescing key or '', priority,
# due epoch second or 0, reducer, data) per job.  A key that exists answers
# with that job; one hint for the whole batch.
_SUBMIT = """
local now = tonumber(redis.call('TIME')[1])
local prefix = ARGV[1]
local n = (#ARGV - 1) / 7
local id = redis.call('INCRBY', K .. 'seq', n) - n
local out = {}
for i = 2, #ARGV, 7 do
  local fn, ckey = ARGV[i], ARGV[i + 2]
  local old = ckey ~= '' and redis.call('HGET', K .. 'u:' .. ckey, fn)
  if old then
    out[#out + 1] = tonumber(old)
    out[#out + 1] = redis.call('HGET', K .. 'job:' .. old, 'prefix')
  else
    id = id + 1
    local due = tonumber(ARGV[i + 4]) > now and ARGV[i + 4] or nil
    insert(id, fn, ARGV[i + 1], ckey, ARGV[i + 3], prefix, ARGV[i + 5], ARGV[i + 6], due)
    out[#out + 1] = id
    out[#out + 1] = prefix
  end
end
settle()
return out
"""

# ARGV: server id, then (function, how many) pairs.  Nothing for a server
# whose lease has lapsed.  Due epoch jobs and retries are promoted first.
_CLAIM = """
local server = ARGV[1]
local now = now_ms()
local lease = redis.call('ZSCORE', K .. 'servers', server)
if not lease or tonumber(lease) <= now then return {} end
local due = redis.call('ZRANGEBYSCORE', K .. 'scheduled', '-inf', now / 1000, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', K .. 'scheduled', id)
  local j = redis.call('HMGET', K .. 'job:' .. id, 'fn', 'prio')
  if j[1] then redis.call('ZADD', K .. 'ready:' .. j[1], score(j[2], id), id) end
end
local out, claimed = {}, {}
for i = 2, #ARGV, 2 do
  local fn = ARGV[i]
  local popped = redis.call('ZPOPMIN', K .. 'ready:' .. fn, ARGV[i + 1])
  for p = 1, #popped, 2 do
    local id = popped[p]
    local key = K .. 'job:' .. id
    local j = redis.call('HMGET', key, 'prefix', 'uniq', 'data', 'prio', 'reducer', 'retries',
      'att', 'fails', 'outs')
    if j[1] then
      local att = tonumber(j[7] or 0) + 1
      redis.call('HSET', key, 'state', 2, 'owner', server, 'att', att)
      claimed[#claimed + 1] = id
      bump(counts.running, fn, 1)
      out[#out + 1] = {tonumber(id), j[1], fn, j[2], j[3], tonumber(j[4]), j[5], att,
        tonumber(j[6] or 0), tonumber(j[8] or 0), j[9] or '[]'}
    end
  end
end
chunked('SADD', K .. 'owned:' .. server, claimed)
settle()
return out
"""

# ARGV: the fence, then (id, attempt) pairs.  Fenced by the attempt, and by
# the owner: after Redis lost writes (a failover), an id and attempt may name
# another job, claimed by another server.
_ACK = """
local mine, first = fence()
local out = {}
for i = first, #ARGV, 2 do
  local id = ARGV[i]
  local j = redis.call('HMGET', K .. 'job:' .. id, 'att', 'fn', 'ckey', 'state', 'owner')
  if j[2] and j[1] == ARGV[i + 1] and (j[4] ~= '2' or mine[j[5]]) then
    forget(id, j[2], j[3], j[4], j[5])
    out[#out + 1] = tonumber(id)
  end
end
settle()
return out
"""

# The jobs of (id, attempt, ...) tuples of ``width`` at ARGV[first ..] that
# this process holds: still running here at that attempt.  Each is passed to
# ``each`` with its tuple's index and its job's fields.
_HELD = """
local function held(width, each)
  local mine, first = fence()
  for i = first, #ARGV, width do
    local id = ARGV[i]
    local j = redis.call('HMGET', K .. 'job:' .. id, 'att', 'state', 'fn', 'owner', 'prio')
    if j[1] == ARGV[i + 1] and j[2] == '2' and mine[j[4]] then each(id, i, j) end
  end
  settle()
  return 0
end
"""

# ARGV: the fence, then (id, attempt, retries) triples.
_RELEASE = """
return held(3, function(id, i, j) requeue(id, j[3], j[4], j[5], nil, 'retries', ARGV[i + 2]) end)
"""

# ARGV: the fence, then (id, attempt, retries, failures, outcomes, delay in s).
_RETRY = """
local now = now_ms()
return held(6, function(id, i, j)
  local delay = tonumber(ARGV[i + 5])
  local due = delay > 0 and (now + delay * 1000) / 1000 or nil
  requeue(id, j[3], j[4], j[5], due, 'retries', ARGV[i + 2], 'fails', ARGV[i + 3],
    'outs', ARGV[i + 4])
end)
"""

# ARGV: the fence, then (id, attempt, failures, outcomes, reason).
_FAIL = """
local now = now_ms()
return held(5, function(id, i, j) keep_failed(id, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], now) end)
"""

# ARGV: (id, attempt, numerator, denominator) quadruples.
_PROGRESS = """
for i = 1, #ARGV, 4 do
  local key = K .. 'job:' .. ARGV[i]
  if redis.call('HGET', key, 'att') == ARGV[i + 1] then
    redis.call('HSET', key, 'num', ARGV[i + 2], 'den', ARGV[i + 3])
  end
end
return 0
"""

# ARGV: --job-retries.  Expired servers go; each of their claimed jobs gets a
# worker_lost outcome and one more retry and failure, and is queued again, or
# past the limit moves to the failed set.
_RESCUE = """
local limit = tonumber(ARGV[1])
local now = now_ms()
local dead = redis.call('ZRANGEBYSCORE', K .. 'servers', '-inf', now)
local moved, kept = 0, 0
for _, s in ipairs(dead) do
  local owned = K .. 'owned:' .. s
  local lost = cjson.encode({'worker_lost', 'server ' .. s .. ' stopped renewing its lease', '-',
    now / 1000})
  for _, id in ipairs(redis.call('SMEMBERS', owned)) do
    local j = redis.call('HMGET', K .. 'job:' .. id, 'state', 'owner', 'fn', 'prio', 'retries',
      'fails', 'outs')
    if j[1] == '2' and j[2] == s then
      local retries, failures = tonumber(j[5] or 0) + 1, tonumber(j[6] or 0) + 1
      local outs = j[7] or '[]'
      outs = outs == '[]' and '[' .. lost .. ']' or string.sub(outs, 1, -2) .. ',' .. lost .. ']'
      if limit == 0 or (limit > 0 and retries >= limit) then
        keep_failed(id, failures, outs, 'worker_lost: its server stopped renewing its lease', now)
        kept = kept + 1
      else
        requeue(id, j[3], s, j[4], nil, 'retries', retries, 'fails', failures, 'outs', outs)
        moved = moved + 1
      end
    end
  end
  redis.call('ZREM', K .. 'servers', s)
end
settle()
for _, s in ipairs(dead) do redis.call('DEL', K .. 'owned:' .. s, K .. 'server:' .. s) end
return {#dead, moved, kept}
"""

# ARGV: firing key, function, priority, handle prefix, reducer, data.  The
# firing is recorded (kept a day) and the job submitted with the key as its
# unique key, or nothing if the firing was recorded already.
_FIRE = """
if not redis.call('SET', K .. 'fired:' .. ARGV[1], 1, 'NX', 'EX', 86400) then return false end
if redis.call('HEXISTS', K .. 'u:' .. ARGV[1], ARGV[2]) == 1 then return false end
local id = redis.call('INCR', K .. 'seq')
insert(id, ARGV[2], ARGV[1], ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6], nil)
settle()
return id
"""

# ARGV: id, handle prefix.  1 deleted, 0 claimed by a server, -1 no such job.
_CANCEL = """
local j = redis.call('HMGET', K .. 'job:' .. ARGV[1], 'prefix', 'state', 'fn', 'ckey', 'owner')
if j[1] ~= ARGV[2] then return -1 end
if j[2] == '2' then return 0 end
forget(ARGV[1], j[3], j[4], j[2], j[5])
settle()
return 1
"""

# ARGV: the selection (see chosen).  Each chosen job's id and fields.
_FAILED_LIST = """
local out = {}
for _, id in ipairs(chosen()) do
  local f = redis.call('HMGET', K .. 'failed:' .. id, 'prefix', 'fn', 'uniq', 'data', 'prio',
    'fails', 'at', 'reason', 'outs')
  table.insert(f, 1, tonumber(id))
  out[#out + 1] = f
end
return out
"""

# ARGV: the selection (see chosen).  Back in the queue under the same id, with its claim
# counter and outcomes, fresh counts, and its unique key unless another job
# (or an earlier one of this call) took it.
_RETRY_FAILED = """
local n = 0
for _, id in ipairs(chosen()) do
  if redis.call('EXISTS', K .. 'job:' .. id) == 0 then
    local f = redis.call('HMGET', K .. 'failed:' .. id, 'fn', 'uniq', 'ckey', 'prio', 'att',
      'outs', 'prefix', 'reducer', 'data')
    drop_failed(id, f[1])
    local ckey = f[3]
    if ckey ~= '' and redis.call('HEXISTS', K .. 'u:' .. ckey, f[1]) == 1 then ckey = '' end
    insert(id, f[1], f[2], ckey, f[4], f[7], f[8], f[9], nil, 'att', f[5], 'outs', f[6])
    n = n + 1
  end
end
settle()
return n
"""

# ARGV: the selection.
_DELETE_FAILED = """
local ids = chosen()
for _, id in ipairs(ids) do drop_failed(id, redis.call('HGET', K .. 'failed:' .. id, 'fn')) end
settle()
return #ids
"""

# ARGV: most records kept, most seconds kept.  At most 1000 dropped a call,
# so that Redis is never busy with one for long.
_TRIM_FAILED = """
local gone, n = {}, 0
local cutoff = now_ms() - tonumber(ARGV[2]) * 1000
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K .. 'failed', '-inf', '(' .. cutoff)) do
  gone[id] = true
end
for _, id in ipairs(redis.call('ZRANGE', K .. 'failed', 0, -tonumber(ARGV[1]) - 1)) do
  gone[id] = true
end
for id in pairs(gone) do
  if n == 1000 then break end  -- FAILED_PAGE
  drop_failed(id, redis.call('HGET', K .. 'failed:' .. id, 'fn'))
  n = n + 1
end
settle()
return n
"""

# ARGV: a random server id, name, lease in ms.  0 if the id is taken.
_REGISTER = """
local now = now_ms()
if redis.call('ZADD', K .. 'servers', 'NX', now + tonumber(ARGV[3]), ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', K .. 'server:' .. ARGV[1], 'name', ARGV[2], 'started', now)
return 1
"""

# ARGV: server id, lease in ms.  Only a lease that has not expired is renewed.
_RENEW = """
local now = now_ms()
local lease = redis.call('ZSCORE', K .. 'servers', ARGV[1])
if not lease or tonumber(lease) <= now then return 0 end
redis.call('ZADD', K .. 'servers', 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# ARGV: server id.  A server still owning jobs (workers busy at the stop) is
# expired instead, so that the next sweep queues them again.
_LEAVE = """
if redis.call('SCARD', K .. 'owned:' .. ARGV[1]) == 0 then
  redis.call('ZREM', K .. 'servers', ARGV[1])
  redis.call('DEL', K .. 'server:' .. ARGV[1])
else
  redis.call('ZADD', K .. 'servers', 'XX', 0, ARGV[1])
end
return 0
"""

# ARGV: unique key.  The oldest job with that key, whatever its function.
_STATUS_UNIQUE = """
local ids = redis.call('HVALS', K .. 'u:' .. ARGV[1])
local first = false
for _, id in ipairs(ids) do
  if not first or tonumber(id) < tonumber(first) then first = id end
end
if not first then return false end
return redis.call('HMGET', K .. 'job:' .. first, 'state', 'num', 'den')
"""

_MEMBERS = """
local out = {now_ms()}
local servers = redis.call('ZRANGE', K .. 'servers', 0, -1, 'WITHSCORES')
for i = 1, #servers, 2 do
  local s = servers[i]
  local info = redis.call('HMGET', K .. 'server:' .. s, 'name', 'started')
  out[#out + 1] = {tonumber(s), info[1] or '', tonumber(info[2] or 0), tonumber(servers[i + 1]),
    redis.call('SCARD', K .. 'owned:' .. s)}
end
return out
"""


class RedisCluster:
    """The scripts of cluster mode over one Redis, under a store's key prefix
    (``timeout``: seconds allowed per command, as for PostgreSQL)."""

    errors = ERRORS

    def __init__(self, store: RedisStore, *, timeout: float = 10.0) -> None:
        self._store = store
        self.base = f"{store.prefix}cluster:"
        self.channel = f"{self.base}wake"
        self.description = (
            f"cluster over redis {store.host}:{store.port}/{store.db} keys {self.base!r}*"
        )
        self._redis = store.connect(timeout)
        self._listener: asyncio.Task[None] | None = None
        self._identities: list[int] = []  # every server id this process registered
        script = self._redis.register_script
        self._submit, self._claim, self._ack, self._progress = (
            script(_PRELUDE + s) for s in (_SUBMIT, _CLAIM, _ACK, _PROGRESS)
        )
        self._release, self._retry, self._fail = (
            script(_PRELUDE + _HELD + s) for s in (_RELEASE, _RETRY, _FAIL)
        )
        self._rescue, self._register, self._renew, self._leave = (
            script(_PRELUDE + s) for s in (_RESCUE, _REGISTER, _RENEW, _LEAVE)
        )
        self._fire, self._cancel = (script(_PRELUDE + s) for s in (_FIRE, _CANCEL))
        self._failed_list, self._retry_failed, self._delete_failed, self._trim_failed = (
            script(_PRELUDE + s)
            for s in (_FAILED_LIST, _RETRY_FAILED, _DELETE_FAILED, _TRIM_FAILED)
        )
        self._status_unique = script(_PRELUDE + _STATUS_UNIQUE)
        self._members = script(_PRELUDE + _MEMBERS)

    async def _run(self, script: AsyncScript, *args: Any) -> Any:
        return await script(keys=[self.base], args=args)

    async def _fenced(self, script: AsyncScript, jobs: Sequence[Sequence[Any]]) -> Any:
        """Run a script over jobs held here, behind the fence of this process's
        server ids."""
        mine = self._identities
        return await self._run(script, len(mine), *mine, *(x for job in jobs for x in job))

    # -- life -----------------------------------------------------------------

    async def open(self, on_wake: Callable[[], None]) -> None:
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
        return bool(await self._run(self._renew, server, round(ttl * 1000)))

    async def leave(self, server: int) -> None:
        await self._run(self._leave, server)

    async def rescue(self, retry_limit: int) -> tuple[int, int, int]:
        dead, moved, dropped = await self._run(self._rescue, retry_limit)
        return int(dead), int(moved), int(dropped)

    # -- jobs -----------------------------------------------------------------

    async def submit(self, jobs: Sequence[Submission], prefix: bytes) -> list[tuple[int, bytes]]:
        args: list[bytes | int] = [prefix]
        for s in jobs:
            key = coalesce_key(s.unique, s.data) or b""
            args += (s.function, s.unique, key, s.priority, s.when, s.reducer, s.data)
        flat = await self._run(self._submit, *args)
        return [(int(flat[i]), bytes(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def claim(self, server: int, wants: Sequence[tuple[bytes, int]]) -> list[Claimed]:
        rows = await self._run(self._claim, server, *(x for want in wants for x in want))
        return [Claimed._make([*row[:-1], row[-1].decode()]) for row in rows]

    async def ack(self, done: Sequence[tuple[int, int]]) -> set[int]:
        return set(await self._fenced(self._ack, done))

    async def release(self, jobs: Sequence[tuple[int, int, int]]) -> None:
        await self._fenced(self._release, jobs)

    async def progress(self, jobs: Sequence[tuple[int, int, int, int]]) -> None:
        await self._run(self._progress, *(x for j in jobs for x in j))

    async def retry(self, jobs: Sequence[Retry]) -> None:
        await self._fenced(self._retry, jobs)

    async def fail(self, jobs: Sequence[Failure]) -> None:
        await self._fenced(self._fail, jobs)

    async def fire(self, key: bytes, job: Submission, prefix: bytes) -> int | None:
        args = (key, job.function, job.priority, prefix, job.reducer, job.data)
        job_id = await self._run(self._fire, *args)
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

    # -- status -----------------------------------------------------------------

    async def status(self, job_id: int) -> tuple[bytes, int, int, int] | None:
        row = await self._redis.hmget(f"{self.base}job:{job_id}", ["prefix", "state", "num", "den"])
        prefix, state, num, den = cast(list[bytes | None], row)
        if prefix is None:
            return None
        return prefix, int(state or 0), int(num or 0), int(den or 0)

    async def status_unique(self, unique: bytes) -> tuple[int, int, int] | None:
        row = await self._run(self._status_unique, unique)
        if not row:
            return None
        state, num, den = row
        return int(state or 0), int(num or 0), int(den or 0)

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
