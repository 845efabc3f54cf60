"""The Lua script the Redis store runs: admission (hot path) and settlement, one script.

`ARGV[1]` names the operation: `a` admits (and reserves), `s` settles (releases a
lease, counts what was disclosed; also used for the late facts of long streams). Both
take the time from Redis `TIME`, so replicas with skewed clocks share one clock, and
leave a TTL on every key they write. The arithmetic mirrors `guard.limits` and
`guard.memory_store`: everything is checked before anything is written.

KEYS (one subject, one hash tag): 1 quarantine, 2 request TAT, 3 records TAT,
4 distinct-patient HLL (current window), 5 the exact set of the same window's patients
(kept while small), 6 leases (sorted set: member `<id>:<records>:<patients>`, score =
expiry in ms), 7 the subject's recent observations (a stream, the last 64) shared by the
replicas' enumeration signals.

Admission ARGV: 2 check quarantine (1/0), 3 request interval ms (0: none), 4 request
tolerance ms, 5 penalty factor, 6 records interval ms (0: none), 7 records window ms,
8 patient limit (0: none), 9 patient window end (epoch ms), 10 exact-set cap,
11 patient keys TTL s, 12 concurrency cap (0: none), 13 lease member ("" none),
14 lease TTL ms, 15 patient digest the path names ("" none).
Returns {1, pttl, value} quarantined | {2, retry_ms, kind, reset_ms} refused |
        {0, remaining, reset_ms} admitted (remaining -1: no request budget).

Settlement ARGV: 2 lease member ("" none), 3 records interval ms (0: none), 4 records
disclosed, 5 patient keys TTL s, 6 exact-set cap, 7 observation ("" none), 8 the last
observation id the caller has seen ("" none), 9 observations TTL ms, 10.. patient
digests. Returns {0} or, with an observation, {0, id1, obs1, ...}: the observations
after the caller's last, its own last.

`SUSPECT` (client hash tag): KEYS 1 suspects (sorted set: pseudonym -> last seen ms),
2 the client's alert; ARGV 1 pseudonym, 2 window ms, 3 principals that raise the alert,
4 alert ms. Returns {alert pttl (0: none), 1 when this call raised it}.
"""

from __future__ import annotations

SUSPECT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('PEXPIRE', KEYS[1], window)
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then return {ttl, 0} end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
  return {tonumber(ARGV[4]), 1}
end
return {0, 0}
"""

GUARD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000

local function add_patients(first, ttl, cap)
  redis.call('PFADD', KEYS[4], unpack(ARGV, first))
  redis.call('EXPIRE', KEYS[4], ttl)
  if redis.call('SCARD', KEYS[5]) < cap then
    redis.call('SADD', KEYS[5], unpack(ARGV, first))
    redis.call('EXPIRE', KEYS[5], ttl)
  end
end

if ARGV[1] == 's' then
  if ARGV[2] ~= '' then redis.call('ZREM', KEYS[6], ARGV[2]) end
  local interval, count = tonumber(ARGV[3]), tonumber(ARGV[4])
  if interval > 0 and count > 0 then
    local tat = tonumber(redis.call('GET', KEYS[3]) or '0')
    if tat < now then tat = now end
    tat = tat + interval * count
    redis.call('SET', KEYS[3], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
  end
  if #ARGV >= 10 then add_patients(10, tonumber(ARGV[5]), tonumber(ARGV[6])) end
  local out = {0}
  if ARGV[7] ~= '' then
    redis.call('XADD', KEYS[7], 'MAXLEN', 64, '*', 'o', ARGV[7])
    redis.call('PEXPIRE', KEYS[7], ARGV[9])
    local from = '-'
    if ARGV[8] ~= '' then from = '(' .. ARGV[8] end
    for _, entry in ipairs(redis.call('XRANGE', KEYS[7], from, '+', 'COUNT', 128)) do
      out[#out + 1] = entry[1]
      out[#out + 1] = entry[2][2]
    end
  end
  return out
end

if ARGV[2] == '1' then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then
    return {1, ttl, redis.call('GET', KEYS[1])}
  end
end
local member = ARGV[13]
local held_records, held_patients = 0, 0
if member ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
  local live = redis.call('ZRANGE', KEYS[6], 0, -1)
  local cap = tonumber(ARGV[12])
  if cap > 0 and #live >= cap then
    return {2, 1000, 'concurrency', 1000}
  end
  for _, held in ipairs(live) do
    local r, p = string.match(held, ':(%d+):(%d+)$')
    held_records = held_records + tonumber(r)
    held_patients = held_patients + tonumber(p)
  end
end
local rec_interval = tonumber(ARGV[6])
if rec_interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[3]) or '0')
  if tat < now then tat = now end
  local over = (tat - now) + held_records * rec_interval - (tonumber(ARGV[7]) - rec_interval)
  if over > 0.001 then
    return {2, math.ceil(over), 'records', math.ceil(over)}
  end
end
local limit = tonumber(ARGV[8])
local digest = ARGV[15]
local add = false
if limit > 0 then
  local cap = tonumber(ARGV[10])
  local seen = redis.call('SCARD', KEYS[5])
  local exact = seen < cap
  if not exact then seen = redis.call('PFCOUNT', KEYS[4]) end
  local known = digest ~= '' and exact and redis.call('SISMEMBER', KEYS[5], digest) == 1
  if not known then
    if seen + held_patients >= limit then
      local wait = math.max(1, math.ceil(tonumber(ARGV[9]) - now))
      return {2, wait, 'patients', wait}
    end
    add = digest ~= ''
  end
end
local remaining, reset = -1, 0
local interval = tonumber(ARGV[3])
if interval > 0 then
  local tolerance = tonumber(ARGV[4])
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat < now then tat = now end
  local backlog = tat - now
  if backlog > tolerance + 0.001 then
    return {2, math.ceil(backlog - tolerance), 'requests', math.ceil(backlog)}
  end
  local new_tat = tat + interval * tonumber(ARGV[5])
  local new_backlog = new_tat - now
  redis.call('SET', KEYS[2], string.format('%.3f', new_tat), 'PX', math.ceil(new_backlog) + 1000)
  remaining = math.floor((tolerance - new_backlog + interval) / interval + 0.000001)
  if remaining < 0 then remaining = 0 end
  reset = math.ceil(new_backlog)
end
if add then add_patients(15, tonumber(ARGV[11]), tonumber(ARGV[10])) end
if member ~= '' then
  local ttl = tonumber(ARGV[14])
  redis.call('ZADD', KEYS[6], now + ttl, member)
  redis.call('PEXPIRE', KEYS[6], ttl)
end
return {0, remaining, reset}
"""
