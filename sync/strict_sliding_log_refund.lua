-- STRICT refund of a sliding log draw: the most recent entries go, the same count as ours,
-- whoever they were. Same KEYS and ARGV as strict_sliding_log.lua; returns 1.
redis.call('ZPOPMAX', KEYS[1], tonumber(ARGV[3]))
return 1
