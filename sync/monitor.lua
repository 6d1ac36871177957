-- Monitoring rollups (sync/monitor.c): one host's new decision counts for one minute.
-- KEYS[1]  the minute's index, rl:m:{<unix minute>} (field h:<host id> = 1 per host)
-- KEYS[2]  this host's hash of the minute, rl:m:{<unix minute>}:<host id>
-- ARGV[1]  time to live of both, in ms (METRICS_RETENTION_DAYS)
-- ARGV[2]  the host's field in the index, h:<host id>
-- ARGV[3..] pairs of field ("a:<endpoint>" allowed, "d:<endpoint>" denied) and count to add
-- Returns the number of counts added. Reads and writes this host's hash only (its size is the
-- host's endpoints, whatever the number of hosts). Only HGETALL, HSET and PEXPIRE: the
-- commands of rl's minimal ACL (docs/operations.md), so no HINCRBY. Exact below 2^53.
local cur = redis.call('HGETALL', KEYS[2])
local have = {}
for i = 1, #cur - 1, 2 do
    have[cur[i]] = tonumber(cur[i + 1])
end
local set = {}
for i = 3, #ARGV - 1, 2 do
    local f = ARGV[i]
    set[#set + 1] = f
    set[#set + 1] = string.format('%.0f', (have[f] or 0) + tonumber(ARGV[i + 1]))
end
if #set > 0 then
    redis.call('HSET', KEYS[2], unpack(set))
    redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[2], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return (#ARGV - 2) / 2
