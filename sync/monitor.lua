-- Monitoring rollups (sync/monitor.c): one host's new decision counts for one minute.
-- KEYS[1]  the minute's hash, rl:m:{<unix minute>}
-- ARGV[1]  its time to live in ms (METRICS_RETENTION_DAYS)
-- ARGV[2]  the reporting host's field, h:<host id>
-- ARGV[3..] pairs of field ("a:<endpoint>" allowed, "d:<endpoint>" denied) and count to add
-- Returns the number of counts added. Only HGETALL, HSET and PEXPIRE: the commands of rl's
-- minimal ACL (docs/operations.md), so no HINCRBY. Counts are exact below 2^53.
local cur = redis.call('HGETALL', KEYS[1])
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
set[#set + 1] = ARGV[2]
set[#set + 1] = '1'
redis.call('HSET', KEYS[1], unpack(set))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return (#ARGV - 2) / 2
