-- STRICT sliding log, exact (sync/strict.c): KEYS[1] is a sorted set of admitted requests scored
-- by their time in microseconds; KEYS[2] a sequence counter making members unique.
-- ARGV: W_us, L, cost, ttl_ms. Returns {allowed, remaining, retry_after_ms (-1 never),
-- reset_after_ms}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local W = tonumber(ARGV[1]); local L = tonumber(ARGV[2])
local cost = tonumber(ARGV[3]); local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - W)
local n = redis.call('ZCARD', KEYS[1])
if n + cost <= L then
  if cost > 0 then
    local seq = redis.call('INCRBY', KEYS[2], cost)
    for i = 1, cost do
      redis.call('ZADD', KEYS[1], now, string.format('%d:%d', now, seq - cost + i))
    end
    redis.call('PEXPIRE', KEYS[1], ttl); redis.call('PEXPIRE', KEYS[2], ttl)
  end
  local reset = 0
  if n + cost > 0 then reset = math.ceil(W / 1000) end
  return {1, L - n - cost, 0, reset}
end
local retry = -1
if cost <= L then
  local e = redis.call('ZRANGE', KEYS[1], n + cost - L - 1, n + cost - L - 1, 'WITHSCORES')
  retry = math.ceil((tonumber(e[2]) + W - now) / 1000)
  if retry < 0 then retry = 0 end
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local reset = 0
if last[2] then reset = math.ceil((tonumber(last[2]) + W - now) / 1000) end
return {0, L - n, retry, reset}
