-- One more open connection for a principal, unless it holds ARGV[1] already. KEYS[1]: its slots,
-- scored by when each expires, on Redis's clock (instances need not agree on time). ARGV: the
-- limit, a slot's lifetime (ms), the new slot's id. Returns 1 when taken, 0 when at the limit.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
