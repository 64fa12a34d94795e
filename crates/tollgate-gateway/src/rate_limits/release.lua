-- A request ended: its parallel slots come back and its tpm counters are corrected by the
-- tokens it used minus the estimate taken at admission.
--
-- KEYS: the par keys (ARGV[2] of them), then the tpm keys.
-- ARGV: request id, number of par keys, then per tpm key the correction (µs, signed).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local npar = tonumber(ARGV[2])
for i = 1, npar do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
for i = npar + 1, #KEYS do
  local delta = tonumber(ARGV[i - npar + 2])
  if delta ~= 0 then
    local tat = tonumber(redis.call('GET', KEYS[i]) or 0)
    -- More used starts from now at the earliest; less used never goes below empty.
    if delta > 0 then
      tat = math.max(tat, now) + delta
    else
      tat = math.max(tat + delta, now)
    end
    if tat > now then
      redis.call('SET', KEYS[i], tat, 'PX', math.floor((tat - now) / 1000) + 1000)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return 1
