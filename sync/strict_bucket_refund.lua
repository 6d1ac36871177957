-- STRICT refund of a token bucket / GCRA draw (a later layer of a layered check denied): gives
-- back what strict_bucket.lua took. Same KEYS and ARGV; returns 1.
--#include strict_idiv.lua
local s = redis.call('GET', KEYS[1])
if s then
  local zi, r = zparse(s)
  local L = tonumber(ARGV[2])
  local x = r - tonumber(ARGV[4]) * tonumber(ARGV[1])
  local q = idiv(x, L)
  zi = zi + q; r = x - q * L
  if zi < 0 then zi, r = 0, 0 end
  redis.call('SET', KEYS[1], string.format('%d:%d', zi, r), 'PX', tonumber(ARGV[5]))
end
return 1
