"""The two Lua scripts the Redis store runs: the admission (hot path) and late records.

Both take the time from Redis `TIME`, so replicas with skewed clocks share one clock,
and both leave a TTL on every key they write. The arithmetic mirrors `guard.limits`.
"""

from __future__ import annotations

# KEYS: 1 quarantine, 2 request TAT, 3 records TAT, 4 distinct-patient HLL (current window),
#       5 the exact set of the same window's patients (kept while small)
# ARGV: 1 check quarantine (1/0), 2 request interval ms (0: none), 3 request tolerance ms,
#       4 penalty factor, 5 records interval ms (0: none), 6 records window ms,
#       7 patient limit (0: none), 8 patient window end (epoch ms), 9 exact-set cap
# Returns {1, pttl, value} quarantined | {2, retry_ms, kind, reset_ms} refused |
#         {0, remaining, reset_ms} admitted (remaining -1: no request budget)
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
if ARGV[1] == '1' then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then
    return {1, ttl, redis.call('GET', KEYS[1])}
  end
end
local rec_interval = tonumber(ARGV[5])
if rec_interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[3]) or '0')
  if tat < now then tat = now end
  local over = (tat - now) - (tonumber(ARGV[6]) - rec_interval)
  if over > 0.001 then
    return {2, math.ceil(over), 'records', math.ceil(over)}
  end
end
local limit = tonumber(ARGV[7])
if limit > 0 then
  local seen = redis.call('SCARD', KEYS[5])
  if seen >= tonumber(ARGV[9]) then seen = redis.call('PFCOUNT', KEYS[4]) end
  if seen >= limit then
    local wait = math.max(1, math.ceil(tonumber(ARGV[8]) - now))
    return {2, wait, 'patients', wait}
  end
end
local interval = tonumber(ARGV[2])
if interval <= 0 then
  return {0, -1, 0}
end
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < now then tat = now end
local backlog = tat - now
if backlog > tolerance + 0.001 then
  return {2, math.ceil(backlog - tolerance), 'requests', math.ceil(backlog)}
end
local new_tat = tat + interval * tonumber(ARGV[4])
local new_backlog = new_tat - now
redis.call('SET', KEYS[2], string.format('%.3f', new_tat), 'PX', math.ceil(new_backlog) + 1000)
local remaining = math.floor((tolerance - new_backlog + interval) / interval + 0.000001)
if remaining < 0 then remaining = 0 end
return {0, remaining, math.ceil(new_backlog)}
"""

# KEYS: 1 records TAT; ARGV: 1 interval ms per record, 2 records disclosed
RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1]) * tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return 1
"""

# Distinct patients of one window: the HLL always, the exact set while under its cap, so
# small counts (the common case) are exact like the in-memory counter.
# KEYS: 1 HLL, 2 exact set; ARGV: 1 TTL seconds, 2 exact-set cap, 3.. patient references
PATIENTS = """
redis.call('PFADD', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[2], unpack(ARGV, 3))
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return 1
"""
