-- Extends the leases of requests still running on this instance (only those still held:
-- XX never brings back a slot that was released).
--
-- KEYS: par keys. ARGV: lease (µs), then per key the request id holding a slot in it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local lease = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], math.floor(lease / 1000) + 1000)
end
return 1
