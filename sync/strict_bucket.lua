-- STRICT token bucket and GCRA, exact (sync/strict.c; docs/design.md section 10, "STRICT").
-- KEYS[1] holds the full time Z = zi + r / L microseconds as the string "zi:r" (0 <= r < L; a
-- plain "zi" from an older version reads as r = 0). Everything is kept times L, in integers: the
-- backlog b = (Z - now) * L, a request adds exactly W, the capacity is C * W. rl refuses a STRICT
-- bucket with C * W > 2^52 (lib/algo.c), so every value is an integer below 2^53, where Lua's
-- doubles are exact; idiv() corrects the one rounding of a double division.
-- ARGV: W_us, L, C, cost, ttl_ms. Returns {allowed, remaining, retry_after_ms (-1 never),
-- reset_after_ms}; every key written gets a TTL.
--#include strict_idiv.lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local W = tonumber(ARGV[1]); local L = tonumber(ARGV[2]); local C = tonumber(ARGV[3])
local cost = tonumber(ARGV[4]); local ttl = tonumber(ARGV[5])
local zi, r = zparse(redis.call('GET', KEYS[1]))
local CW = C * W
local b = 0
if zi >= now then b = (zi - now) * L + r end
if b > CW then b = CW end
local inc = cost * W
if inc <= CW and b + inc <= CW then
  local nb = b + inc
  if cost > 0 then
    local q = idiv(nb, L)
    redis.call('SET', KEYS[1], string.format('%d:%d', now + q, nb - q * L), 'PX', ttl)
  end
  return {1, idiv(CW - nb, W), 0, -idiv(-nb, L * 1000)}
end
local retry = -1
if inc <= CW then retry = -idiv(-(b + inc - CW), L * 1000) end
local rem = 0
if b < CW then rem = idiv(CW - b, W) end
return {0, rem, retry, -idiv(-b, L * 1000)}
