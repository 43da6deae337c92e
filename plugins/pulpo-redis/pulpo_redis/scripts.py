"""The Lua scripts that change a queue: each change is one script, atomic on the server.

Every key of a queue starts with ``<prefix>:{<queue>}:`` (:mod:`pulpo_redis.keys`), so in a
Redis Cluster the whole queue lives in one hash slot and its scripts run on one shard.

``KEYS`` of every script: ready, delayed, reserved, buried, seq, wake, foreign; ``ARGV[1]`` is
the key prefix of the queue's job hashes. A job hash (``...:j:<n>``) holds ``d`` (the JSON
message), ``a`` (attempts), ``p`` (priority), ``t`` (ttr, seconds), ``s`` (state), ``at`` (ready
time, ms), ``m`` (its member of the ready set), ``k`` (the token of the lease that holds it),
``n`` (leases handed out so far) and ``w`` (the reason it was buried).

The ready set gives every member score 0, so Redis orders it by the member's bytes: priority,
ready time, then job number, each zero-padded (priority first, then ready time, then age).
Time is the server's (``TIME``), so the clocks of workers and publishers never disagree.
"""

from __future__ import annotations

#: Shared by every script: time, job keys, moving a job to ready, promoting what came due.
_COMMON = """
local R, D, X, B, SEQ, WAKE, FOREIGN = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local base = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function jkey(n) return base .. n end
local function kind(k) return redis.call('TYPE', k)['ok'] end
local function bury_foreign(n, why, now)
  redis.call('HSET', FOREIGN, n, why)
  redis.call('ZADD', B, now, n)
end
local function member(p, at, n)
  return string.format('%010d%015d%012d', tonumber(p) or 2147483648, at, tonumber(n))
end
local function make_ready(n, at)
  local k = jkey(n)
  local m = member(redis.call('HGET', k, 'p'), at, n)
  redis.call('HSET', k, 's', 'ready', 'm', m, 'at', at)
  redis.call('ZADD', R, 0, m)
end
local function promote(now)
  local due = redis.call('ZRANGEBYSCORE', D, '-inf', now, 'LIMIT', 0, 1000)
  for _, n in ipairs(due) do
    redis.call('ZREM', D, n)
    local t = kind(jkey(n))
    if t == 'hash' then
      make_ready(n, tonumber(redis.call('HGET', jkey(n), 'at')) or now)
    elseif t ~= 'none' then
      bury_foreign(n, 'its key holds a Redis ' .. t .. ', not a job hash', now)
    end
  end
  local lost = redis.call('ZRANGEBYSCORE', X, '-inf', now, 'LIMIT', 0, 1000)
  for _, n in ipairs(lost) do
    redis.call('ZREM', X, n)
    local t = kind(jkey(n))
    if t == 'hash' then
      -- The worker that held it is gone: the lease that ran out counts as an attempt.
      redis.call('HINCRBY', jkey(n), 'a', 1)
      redis.call('HDEL', jkey(n), 'k')
      make_ready(n, now)
    elseif t ~= 'none' then
      bury_foreign(n, 'its key holds a Redis ' .. t .. ', not a job hash', now)
    end
  end
  if #due + #lost > 0 then redis.call('LPUSH', WAKE, 1) end
end
-- The job's fields {s, k, u, uf, t} when the lease ``token`` holds it, else false (also for a
-- key that is not a hash: HMGET answers an error, which pcall returns).
local function held(n, token)
  local f = redis.pcall('HMGET', jkey(n), 's', 'k', 'u', 'uf', 't')
  if f.err or f[1] ~= 'reserved' or f[2] ~= token then return false end
  return f
end
local function ukey(name) return string.sub(base, 1, -3) .. 'u:' .. name end
local function free_unique(n, hold, name, uf)
  -- A unique job's key is held while it lives; ``unique_for`` keeps it that long after.
  -- ``name`` and ``uf`` are the job's fields ``u`` and ``uf``, read by the caller.
  if not name then return end
  local k = ukey(name)
  if redis.call('GET', k) ~= tostring(n) then return end
  local seconds = tonumber(uf) or 0
  if hold and seconds > 0 then
    redis.call('EXPIRE', k, math.ceil(seconds))
  else
    redis.call('DEL', k)
  end
end
local function wake()
  if redis.call('LPUSH', WAKE, 1) > 64 then redis.call('LTRIM', WAKE, 0, 63) end
end
"""

_ADD = """
local n = redis.call('INCR', SEQ)
local k = jkey(n)
local now = now_ms()
local at = tonumber(ARGV[4])
if at > now then
  redis.call('HSET', k, 'd', ARGV[2], 'a', 0, 'p', ARGV[3], 't', ARGV[5], 'n', 0,
             's', 'delayed', 'at', at)
  redis.call('ZADD', D, at, n)
else
  local m = member(ARGV[3], now, n)
  redis.call('HSET', k, 'd', ARGV[2], 'a', 0, 'p', ARGV[3], 't', ARGV[5], 'n', 0,
             's', 'ready', 'm', m, 'at', now)
  redis.call('ZADD', R, 0, m)
end
wake()
"""

#: ARGV: base, data, priority, ready time in ms (0: now), ttr. Returns the job number.
ENQUEUE = _COMMON + _ADD + """
return n
"""

#: ARGV: base, data, priority, ready time, ttr, unique key, unique_for (0: none). Returns
#: {n, 1} for a new job, or {n, 0}: the job number that holds the key (no job was made).
ENQUEUE_UNIQUE = _COMMON + """
local holder = redis.call('GET', ukey(ARGV[6]))
if holder then return {holder, 0} end
""" + _ADD + """
redis.call('HSET', k, 'u', ARGV[6], 'uf', ARGV[7])
redis.call('SET', ukey(ARGV[6]), n)
return {n, 1}
"""

#: ARGV: base, default ttr. Returns {n, data, attempts, ttr, token}, or {'', ms until something
#: comes due or runs out (-1: nothing)} when no job is ready.
CLAIM = _COMMON + """
local now = now_ms()
promote(now)
while true do
  local top = redis.call('ZPOPMIN', R)
  if #top == 0 then break end
  local m = top[1]
  local n = tostring(tonumber(string.sub(m, 26)))
  local k = jkey(n)
  -- One read for the check and the job (a key that is no hash answers an error; a missing
  -- one, or a job made ready again since, has another member).
  local f = redis.pcall('HMGET', k, 'm', 'd', 't', 'a', 'n')
  if f.err then
    bury_foreign(n, 'its key holds a Redis ' .. kind(k) .. ', not a job hash', now)
  elseif f[1] == m then
    local ttr = tonumber(f[3]) or tonumber(ARGV[2])
    local token = tostring((tonumber(f[5]) or 0) + 1)
    redis.call('HSET', k, 's', 'reserved', 'k', token, 'n', token)
    redis.call('ZADD', X, now + ttr * 1000, n)
    return {n, f[2] or '', f[4] or '0', ttr, token}
  end
end
redis.call('DEL', WAKE)
local soon = -1
local nd = redis.call('ZRANGE', D, 0, 0, 'WITHSCORES')
local nx = redis.call('ZRANGE', X, 0, 0, 'WITHSCORES')
if #nd > 0 then soon = tonumber(nd[2]) - now end
if #nx > 0 then
  local s = tonumber(nx[2]) - now
  if soon < 0 or s < soon then soon = s end
end
return {'', math.max(soon, -1)}
"""

#: ARGV: base, n, token. 1 when deleted, 0 when the lease is no longer this token's.
COMMIT = _COMMON + """
local n = ARGV[2]
local f = held(n, ARGV[3])
if not f then return 0 end
redis.call('ZREM', X, n)
free_unique(n, true, f[3], f[4])
redis.call('DEL', jkey(n))
return 1
"""

#: ARGV: base, n, token, delay in ms, count (1: one more attempt, 0: a release, unrun).
ROLLBACK = _COMMON + """
local n = ARGV[2]
if not held(n, ARGV[3]) then return 0 end
local k = jkey(n)
redis.call('ZREM', X, n)
redis.call('HDEL', k, 'k')
local now = now_ms()
local delay = tonumber(ARGV[4])
if ARGV[5] == '1' then
  redis.call('HINCRBY', k, 'a', 1)
end
if delay > 0 then
  redis.call('HSET', k, 's', 'delayed', 'at', now + delay)
  redis.call('ZADD', D, now + delay, n)
elseif ARGV[5] == '1' then
  make_ready(n, now)
else
  make_ready(n, math.min(tonumber(redis.call('HGET', k, 'at')) or now, now))
end
wake()
return 1
"""

#: ARGV: base, n, token, reason. 1 when buried, 0 when the lease is no longer this token's.
BURY = _COMMON + """
local n = ARGV[2]
local f = held(n, ARGV[3])
if not f then return 0 end
redis.call('ZREM', X, n)
redis.call('HDEL', jkey(n), 'k')
free_unique(n, false, f[3], f[4])
redis.call('HSET', jkey(n), 's', 'buried', 'w', ARGV[4])
redis.call('ZADD', B, now_ms(), n)
return 1
"""

#: ARGV: base, n, token. 1 when the lease was renewed for another ttr, 0 when no longer held.
TOUCH = _COMMON + """
local n = ARGV[2]
local f = held(n, ARGV[3])
if not f then return 0 end
local ttr = tonumber(f[5]) or 60
redis.call('ZADD', X, 'XX', now_ms() + ttr * 1000, n)
return 1
"""

#: ARGV: base, bound (-1: all). Moves buried jobs back to ready, oldest first; returns how many.
KICK = _COMMON + """
local bound = tonumber(ARGV[2])
local ids = redis.call('ZRANGE', B, 0, bound < 0 and -1 or bound - 1)
local now = now_ms()
local kicked = 0
for _, n in ipairs(ids) do
  if kind(jkey(n)) == 'hash' and redis.call('HEXISTS', FOREIGN, n) == 0 then
    redis.call('ZREM', B, n)
    redis.call('HDEL', jkey(n), 'w')
    make_ready(n, now)
    kicked = kicked + 1
  end
end
if kicked > 0 then wake() end
return kicked
"""

#: ARGV: base, n. 1 when the job (in any state) was deleted, 0 when there was none.
DELETE = _COMMON + """
local n = ARGV[2]
local k = jkey(n)
local found = 0
if redis.call('HDEL', FOREIGN, n) == 1 then found = 1 end
found = found + redis.call('ZREM', B, n) + redis.call('ZREM', D, n) + redis.call('ZREM', X, n)
if kind(k) == 'hash' then
  local f = redis.call('HMGET', k, 'u', 'uf', 'm')
  free_unique(n, false, f[1], f[2])
  if f[3] then redis.call('ZREM', R, f[3]) end
  found = found + 1
end
redis.call('DEL', k)
if found > 0 then return 1 end
return 0
"""

#: ARGV: base. Promotes what came due, then {ready, delayed, reserved, buried}.
STATS = _COMMON + """
promote(now_ms())
return {redis.call('ZCARD', R), redis.call('ZCARD', D), redis.call('ZCARD', X),
        redis.call('ZCARD', B)}
"""

#: ARGV: base. Promotes what came due, then {now in ms, the earliest ready time in ms of the
#: ready jobs, or false}: the first member of each priority holds that priority's earliest
#: ready time, so the walk visits one member per priority present (at most 10,000).
READY_AGE = _COMMON + """
local now = now_ms()
promote(now)
local oldest = false
local from = '-'
for _ = 1, 10000 do
  local first = redis.call('ZRANGEBYLEX', R, from, '+', 'LIMIT', 0, 1)[1]
  if not first then break end
  local at = tonumber(string.sub(first, 11, 25))
  if not oldest or at < oldest then oldest = at end
  from = '[' .. string.format('%010d', tonumber(string.sub(first, 1, 10)) + 1)
end
return {now, oldest}
"""
