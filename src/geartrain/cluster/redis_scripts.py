"""The Lua scripts of cluster mode on Redis (:mod:`.redis` runs them).

Keys under ``<prefix>cluster:`` (``--redis-prefix``, default ``_gear_``):

- ``job:<id>``: a hash per job (function, unique key, data, priority, state
  (a :class:`~.states.State`), owner, claim number (``att``), retries, failures,
  outcomes, progress, handle prefix; the submission's retry policy (``rp``) and
  seconds its result is kept (``keep``), only where given);
- ``ready:<function>``: a sorted set of queued ids, scored priority * 2^50 + id,
  so ZPOPMIN takes the highest priority first and the oldest within it;
- ``scheduled``: epoch jobs and retries by due time (epoch seconds), moved to
  ``ready:`` by claims;
- ``u:<key>``: a hash from function to the id of the job with that unique key
  (the cluster-wide coalescing index);
- ``servers``: a sorted set of server ids scored by the lease's expiry (ms,
  Redis's clock); ``server:<id>``: its name and start; ``owned:<id>``: the
  ids it claimed and has not acknowledged;
- ``sweeper``: who sweeps for dead servers now (set with NX, expiring);
- ``total`` and ``running``: hashes of counts per function, for ``status``;
- ``failed``: the failed set's ids by the time they failed (ms);
  ``failed:<id>``: a failed job; ``failed:count``: their counts per function;
- ``fired:<key>``: a schedule's firing, expiring after a day;
- ``seq``: the job id counter; ``wake``: the pub/sub channel.

Every operation that changes more than one key is one script, so a batch is
atomic and costs one round trip; Redis's clock decides leases and due times.
Each script is :data:`PRELUDE` followed by its own text.  No script decides a
retry: members decide and write the outcome (:mod:`.rescue`).
"""

from __future__ import annotations

from .states import State

# Helpers every script starts with.  K is the key prefix; ids arrive and are
# compared as strings.  Counts, owned-set changes and newly queued ids are
# gathered per script and applied once (settle), not per job, with one wake-up
# hint if anything was queued.  Fields still at zero are not stored.  A job's
# state is compared as Redis gives it back: a string.
PRELUDE = (
    f"""
local WAITING, CLAIMED = '{State.WAITING:d}', '{State.CLAIMED:d}'
"""
    + """
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
-- The owners a script may act for lead ARGV (how many, then the ids): this
-- process's server ids, or the dead servers a sweep rescues.  A job claimed by
-- any other server is not the caller's to change.
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
  if state == CLAIMED then
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
  redis.call('HSET', K .. 'job:' .. id, 'state', WAITING, 'owner', '', 'num', 0, 'den', 0, ...)
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
)

# ARGV: handle prefix, then (function, unique, coalescing key or '', priority,
# due epoch second or 0, reducer, data, retry policy or '', seconds to keep its
# result or '') per job.  A key that exists answers with that job; one hint for
# the whole batch.
SUBMIT = """
local now = tonumber(redis.call('TIME')[1])
local prefix = ARGV[1]
local n = (#ARGV - 1) / 9
local id = redis.call('INCRBY', K .. 'seq', n) - n
local out = {}
for i = 2, #ARGV, 9 do
  local fn, ckey = ARGV[i], ARGV[i + 2]
  local old = ckey ~= '' and redis.call('HGET', K .. 'u:' .. ckey, fn)
  if old then
    out[#out + 1] = tonumber(old)
    out[#out + 1] = redis.call('HGET', K .. 'job:' .. old, 'prefix')
  else
    id = id + 1
    local due = tonumber(ARGV[i + 4]) > now and ARGV[i + 4] or nil
    local extra = {}
    if ARGV[i + 7] ~= '' then extra[#extra + 1] = 'rp'; extra[#extra + 1] = ARGV[i + 7] end
    if ARGV[i + 8] ~= '' then extra[#extra + 1] = 'keep'; extra[#extra + 1] = ARGV[i + 8] end
    insert(id, fn, ARGV[i + 1], ckey, ARGV[i + 3], prefix, ARGV[i + 5], ARGV[i + 6], due,
      unpack(extra))
    out[#out + 1] = id
    out[#out + 1] = prefix
  end
end
settle()
return out
"""

# ARGV: server id, then (function, how many) pairs.  Nothing for a server
# whose lease has lapsed.  Due epoch jobs and retries are promoted first.
CLAIM = """
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
      'att', 'fails', 'outs', 'rp', 'keep')
    if j[1] then
      local att = tonumber(j[7] or 0) + 1
      redis.call('HSET', key, 'state', CLAIMED, 'owner', server, 'att', att)
      claimed[#claimed + 1] = id
      bump(counts.running, fn, 1)
      out[#out + 1] = {tonumber(id), j[1], fn, j[2], j[3], tonumber(j[4]), j[5], att,
        tonumber(j[6] or 0), tonumber(j[8] or 0), j[9] or '[]', j[10] or '', j[11] or '0'}
    end
  end
end
chunked('SADD', K .. 'owned:' .. server, claimed)
settle()
return out
"""

# ARGV: the fence, then (id, claim) pairs.  Fenced by the claim number, and by
# the owner: after Redis lost writes (a failover), an id and claim may name
# another job, claimed by another server.
ACK = """
local mine, first = fence()
local out = {}
for i = first, #ARGV, 2 do
  local id = ARGV[i]
  local j = redis.call('HMGET', K .. 'job:' .. id, 'att', 'fn', 'ckey', 'state', 'owner')
  if j[2] and j[1] == ARGV[i + 1] and (j[4] ~= CLAIMED or mine[j[5]]) then
    forget(id, j[2], j[3], j[4], j[5])
    out[#out + 1] = tonumber(id)
  end
end
settle()
return out
"""

# The jobs of (id, claim, ...) tuples of ``width`` at ARGV[first ..] that the
# fence's owners hold: still claimed by one of them under that claim number.
# Each is passed to ``each`` with its tuple's index and its job's fields.
HELD = """
local function held(width, each)
  local mine, first = fence()
  for i = first, #ARGV, width do
    local id = ARGV[i]
    local j = redis.call('HMGET', K .. 'job:' .. id, 'att', 'state', 'fn', 'owner', 'prio')
    if j[1] == ARGV[i + 1] and j[2] == CLAIMED and mine[j[4]] then each(id, i, j) end
  end
  settle()
  return 0
end
"""

# ARGV: a server id.  (id, claim, retries) of the jobs it claimed and has not acknowledged.
CLAIMED_BY = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', K .. 'owned:' .. ARGV[1])) do
  local j = redis.call('HMGET', K .. 'job:' .. id, 'att', 'state', 'owner', 'retries')
  if j[2] == CLAIMED and j[3] == ARGV[1] then
    out[#out + 1] = {tonumber(id), tonumber(j[1]), tonumber(j[4] or 0)}
  end
end
return out
"""

# ARGV: the fence, then (id, claim, retries) triples.
RELEASE = """
return held(3, function(id, i, j) requeue(id, j[3], j[4], j[5], nil, 'retries', ARGV[i + 2]) end)
"""

# ARGV: the fence, then (id, claim, retries, failures, outcomes, delay in s).
RETRY = """
local now = now_ms()
return held(6, function(id, i, j)
  local delay = tonumber(ARGV[i + 5])
  local due = delay > 0 and (now + delay * 1000) / 1000 or nil
  requeue(id, j[3], j[4], j[5], due, 'retries', ARGV[i + 2], 'fails', ARGV[i + 3],
    'outs', ARGV[i + 4])
end)
"""

# ARGV: the fence, then (id, claim, failures, outcomes, reason).
FAIL = """
local now = now_ms()
return held(5, function(id, i, j) keep_failed(id, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], now) end)
"""

# ARGV: (id, claim, numerator, denominator) quadruples.
PROGRESS = """
for i = 1, #ARGV, 4 do
  local key = K .. 'job:' .. ARGV[i]
  if redis.call('HGET', key, 'att') == ARGV[i + 1] then
    redis.call('HSET', key, 'num', ARGV[i + 2], 'den', ARGV[i + 3])
  end
end
return 0
"""

# ARGV: a token naming this sweep, how long it may last (ms).  False if another
# sweep holds the key; else the servers whose lease expired, and the jobs they
# claimed: (id, claim, owner, function, retries, failures, outcomes, retry policy) each.
# Stale entries of their owned: sets (jobs claimed since by another server,
# after Redis lost writes) are dropped, so that a dead server whose jobs have all
# moved owns nothing and leaves at swept.
ORPHANS = """
if not redis.call('SET', K .. 'sweeper', ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local dead = redis.call('ZRANGEBYSCORE', K .. 'servers', '-inf', now_ms())
local out = {}
for _, s in ipairs(dead) do
  for _, id in ipairs(redis.call('SMEMBERS', K .. 'owned:' .. s)) do
    local j = redis.call('HMGET', K .. 'job:' .. id, 'state', 'owner', 'att', 'fn', 'retries',
      'fails', 'outs', 'rp')
    if j[1] == CLAIMED and j[2] == s then
      out[#out + 1] = {tonumber(id), tonumber(j[3]), tonumber(s), j[4], tonumber(j[5] or 0),
        tonumber(j[6] or 0), j[7] or '[]', j[8] or ''}
    else
      append(unowned, s, id)
    end
  end
end
settle()
return {dead, out}
"""

# ARGV: the sweep's token, then the dead servers it found.  Those that own no
# job any more leave; the sweep is let go.
SWEPT = """
for i = 2, #ARGV do
  local s = ARGV[i]
  if redis.call('SCARD', K .. 'owned:' .. s) == 0 then
    redis.call('ZREM', K .. 'servers', s)
    redis.call('DEL', K .. 'server:' .. s)
  end
end
if redis.call('GET', K .. 'sweeper') == ARGV[1] then redis.call('DEL', K .. 'sweeper') end
return 0
"""

# ARGV: firing key, function, priority, handle prefix, reducer, data.  The
# firing is recorded (kept a day) and the job submitted with the key as its
# unique key, or nothing if the firing was recorded already.
FIRE = """
if not redis.call('SET', K .. 'fired:' .. ARGV[1], 1, 'NX', 'EX', 86400) then return false end
if redis.call('HEXISTS', K .. 'u:' .. ARGV[1], ARGV[2]) == 1 then return false end
local id = redis.call('INCR', K .. 'seq')
insert(id, ARGV[2], ARGV[1], ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6], nil)
settle()
return id
"""

# ARGV: id, handle prefix.  1 deleted, 0 claimed by a server, -1 no such job.
CANCEL = """
local j = redis.call('HMGET', K .. 'job:' .. ARGV[1], 'prefix', 'state', 'fn', 'ckey', 'owner')
if j[1] ~= ARGV[2] then return -1 end
if j[2] == CLAIMED then return 0 end
forget(ARGV[1], j[3], j[4], j[2], j[5])
settle()
return 1
"""

# ARGV: the selection (see chosen).  Each chosen job's id and fields.
FAILED_LIST = """
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
RETRY_FAILED = """
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
DELETE_FAILED = """
local ids = chosen()
for _, id in ipairs(ids) do drop_failed(id, redis.call('HGET', K .. 'failed:' .. id, 'fn')) end
settle()
return #ids
"""

# ARGV: most records kept, most seconds kept.  At most 1000 dropped a call,
# so that Redis is never busy with one for long.
TRIM_FAILED = """
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
REGISTER = """
local now = now_ms()
if redis.call('ZADD', K .. 'servers', 'NX', now + tonumber(ARGV[3]), ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', K .. 'server:' .. ARGV[1], 'name', ARGV[2], 'started', now)
return 1
"""

# ARGV: server id, lease in ms.  Only a lease that has not expired is renewed.
RENEW = """
local now = now_ms()
local lease = redis.call('ZSCORE', K .. 'servers', ARGV[1])
if not lease or tonumber(lease) <= now then return 0 end
redis.call('ZADD', K .. 'servers', 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# ARGV: server id.  A server still owning jobs (workers busy at the stop) is
# expired instead, so that the next sweep queues them again.
LEAVE = """
if redis.call('SCARD', K .. 'owned:' .. ARGV[1]) == 0 then
  redis.call('ZREM', K .. 'servers', ARGV[1])
  redis.call('DEL', K .. 'server:' .. ARGV[1])
else
  redis.call('ZADD', K .. 'servers', 'XX', 0, ARGV[1])
end
return 0
"""

# ARGV: unique key.  The oldest job with that key, whatever its function.
STATUS_UNIQUE = """
local ids = redis.call('HVALS', K .. 'u:' .. ARGV[1])
local first = false
for _, id in ipairs(ids) do
  if not first or tonumber(id) < tonumber(first) then first = id end
end
if not first then return false end
return redis.call('HMGET', K .. 'job:' .. first, 'state', 'num', 'den')
"""

MEMBERS = """
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
