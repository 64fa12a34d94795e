-- Admits one request under every scope's limits, or refuses it having changed nothing: every
-- limit of every scope is checked before any counter is written, and the script runs alone on
-- the Redis server, so instances sharing it never admit past a limit between them.
--
-- KEYS: per scope, its rpm, tpm and par keys (3 per scope, in order).
-- ARGV: lease (µs), request id, then per scope: rpm, tpm, parallel (-1: none) and what the
-- request's estimated tokens cost under its tpm (µs; computed by the caller in exact integers).
-- rpm and tpm keys hold a GCRA TAT (µs, Redis's clock); a par key is a sorted set of request ids
-- scored by when their lease ends (expired leases are pruned here: a crashed instance's
-- requests free their slots when their lease runs out).
-- Returns: admitted (1|0), refusing scope (1-based, 0: none), refusing limit (1 rpm, 2 tpm,
-- 3 parallel), its wait (µs), then per scope: rpm TAT ahead of now, tpm TAT ahead of now (µs).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local WINDOW = 60000000
local lease = tonumber(ARGV[1])
local id = ARGV[2]
local n = #KEYS / 3

local worst_scope, worst_limit, worst_wait = 0, 0, -1
local function over(i, limit, wait)
  if wait > worst_wait then
    worst_scope, worst_limit, worst_wait = i, limit, wait
  end
end

local tats = {}
for i = 1, n do
  local k, a = 3 * (i - 1), 4 * (i - 1)
  local rpm, tpm, par = tonumber(ARGV[3 + a]), tonumber(ARGV[4 + a]), tonumber(ARGV[5 + a])
  local rpm_tat = math.max(tonumber(redis.call('GET', KEYS[k + 1]) or 0), now)
  local tpm_tat = math.max(tonumber(redis.call('GET', KEYS[k + 2]) or 0), now)
  tats[i] = {rpm_tat, tpm_tat}
  if par >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now)
    if redis.call('ZCARD', KEYS[k + 3]) >= par then
      over(i, 3, 1000000)
    end
  end
  if tpm == 0 then
    over(i, 2, WINDOW)
  elseif tpm > 0 and tpm_tat - now > WINDOW then
    -- Over only once the window is past its value: a tpm limit never trips below it.
    over(i, 2, tpm_tat - now - WINDOW)
  end
  if rpm == 0 then
    over(i, 1, WINDOW)
  elseif rpm > 0 then
    local ahead = rpm_tat + math.floor(WINDOW / rpm) - now
    if ahead > WINDOW then
      over(i, 1, ahead - WINDOW)
    end
  end
end

local admitted = worst_wait < 0
if admitted then
  for i = 1, n do
    local k, a = 3 * (i - 1), 4 * (i - 1)
    local rpm, tpm, par, cost = tonumber(ARGV[3 + a]), tonumber(ARGV[4 + a]), tonumber(ARGV[5 + a]), tonumber(ARGV[6 + a])
    -- Each TAT key lives until its TAT: after that it reads the same as no key.
    if rpm > 0 then
      tats[i][1] = tats[i][1] + math.floor(WINDOW / rpm)
      redis.call('SET', KEYS[k + 1], tats[i][1], 'PX', math.floor((tats[i][1] - now) / 1000) + 1000)
    end
    if tpm > 0 and cost > 0 then
      tats[i][2] = tats[i][2] + cost
      redis.call('SET', KEYS[k + 2], tats[i][2], 'PX', math.floor((tats[i][2] - now) / 1000) + 1000)
    end
    if par >= 0 then
      redis.call('ZADD', KEYS[k + 3], now + lease, id)
      redis.call('PEXPIRE', KEYS[k + 3], math.floor(lease / 1000) + 1000)
    end
  end
end

local out = {admitted and 1 or 0, worst_scope, worst_limit, math.max(worst_wait, 0)}
for i = 1, n do
  out[#out + 1] = tats[i][1] - now
  out[#out + 1] = tats[i][2] - now
end
return out
