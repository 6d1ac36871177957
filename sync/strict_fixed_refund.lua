-- STRICT refund of a fixed window draw. Same KEYS and ARGV as strict_fixed.lua; returns 1.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local k = KEYS[1] .. ':' .. math.floor(now / tonumber(ARGV[1]))
local used = tonumber(redis.call('GET', k) or '0')
local back = tonumber(ARGV[3]); if back > used then back = used end
if back > 0 then redis.call('DECRBY', k, back) end
return 1
