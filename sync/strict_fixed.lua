-- STRICT fixed window (sync/strict.c): KEYS[1] is the key's prefix; the window's count lives in
-- KEYS[1]..':'..index. ARGV: W_ms, L, cost, ttl_ms. Windows are aligned to multiples of W since
-- the epoch. Returns {allowed, remaining, retry_after_ms (-1 never), reset_after_ms}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local W = tonumber(ARGV[1]); local L = tonumber(ARGV[2])
local cost = tonumber(ARGV[3]); local ttl = tonumber(ARGV[4])
local idx = math.floor(now / W)
local k = KEYS[1] .. ':' .. idx
local used = tonumber(redis.call('GET', k) or '0')
local reset = (idx + 1) * W - now
if used + cost <= L then
  if cost > 0 then redis.call('INCRBY', k, cost); redis.call('PEXPIRE', k, ttl) end
  return {1, L - used - cost, 0, reset}
end
local retry = -1
if cost <= L then retry = reset end
return {0, L - used, retry, reset}
