/*
 * The STRICT mode's Lua scripts: every check is one atomic script in Redis (EVALSHA), exact
 * cluster-wide. They are the Redis twins of lib/algo.c's algorithms, with two differences forced
 * by Lua (numbers are doubles, exact only up to 2^53): time is in microseconds, taken from the
 * Redis server's TIME (one clock for the whole cluster), and T = floor(window_us / requests).
 *
 * Every script returns {allowed (0/1), remaining, retry_after_ms (-1 = never), reset_after_ms}
 * and sets a TTL on every key it writes (ARGV ttl_ms), so Redis memory stays bounded.
 * Keys carry a hash tag ({...}) so that in Redis Cluster each script's keys share one slot.
 */
#ifndef RL_SYNC_SCRIPTS_H
#define RL_SYNC_SCRIPTS_H

/* Token bucket and GCRA: KEYS[1] holds the full time Z in microseconds (a string).
 * ARGV: T_us, tau_us, cost, ttl_ms. */
static const char rl__lua_bucket[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local T = tonumber(ARGV[1]); local tau = tonumber(ARGV[2])\n"
    "local cost = tonumber(ARGV[3]); local ttl = tonumber(ARGV[4])\n"
    "local z = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if z < now then z = now end\n"
    "if z > now + tau then z = now + tau end\n"
    "local backlog = z - now\n"
    "local inc = cost * T\n"
    "if inc <= tau and backlog + inc <= tau then\n"
    "  if cost > 0 then redis.call('SET', KEYS[1], string.format('%d', z + inc), 'PX', ttl) end\n"
    "  return {1, math.floor((tau - backlog - inc) / T), 0, math.ceil((backlog + inc) / 1000)}\n"
    "end\n"
    "local retry = -1\n"
    "if inc <= tau then retry = math.ceil((backlog + inc - tau) / 1000) end\n"
    "local rem = 0\n"
    "if backlog < tau then rem = math.floor((tau - backlog) / T) end\n"
    "return {0, rem, retry, math.ceil(backlog / 1000)}\n";

/* Fixed window: KEYS[1] is the key's prefix; the window's count lives in KEYS[1]..':'..index.
 * ARGV: W_ms, L, cost, ttl_ms. Windows are aligned to multiples of W since the epoch. */
static const char rl__lua_fixed[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local W = tonumber(ARGV[1]); local L = tonumber(ARGV[2])\n"
    "local cost = tonumber(ARGV[3]); local ttl = tonumber(ARGV[4])\n"
    "local idx = math.floor(now / W)\n"
    "local k = KEYS[1] .. ':' .. idx\n"
    "local used = tonumber(redis.call('GET', k) or '0')\n"
    "local reset = (idx + 1) * W - now\n"
    "if used + cost <= L then\n"
    "  if cost > 0 then redis.call('INCRBY', k, cost); redis.call('PEXPIRE', k, ttl) end\n"
    "  return {1, L - used - cost, 0, reset}\n"
    "end\n"
    "local retry = -1\n"
    "if cost <= L then retry = reset end\n"
    "return {0, L - used, retry, reset}\n";

/* Sliding log (exact): KEYS[1] is a sorted set of admitted requests scored by their time in
 * microseconds; KEYS[2] a sequence counter making members unique. ARGV: W_us, L, cost, ttl_ms. */
static const char rl__lua_sliding_log[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local W = tonumber(ARGV[1]); local L = tonumber(ARGV[2])\n"
    "local cost = tonumber(ARGV[3]); local ttl = tonumber(ARGV[4])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - W)\n"
    "local n = redis.call('ZCARD', KEYS[1])\n"
    "if n + cost <= L then\n"
    "  if cost > 0 then\n"
    "    local seq = redis.call('INCRBY', KEYS[2], cost)\n"
    "    for i = 1, cost do\n"
    "      redis.call('ZADD', KEYS[1], now, string.format('%d:%d', now, seq - cost + i))\n"
    "    end\n"
    "    redis.call('PEXPIRE', KEYS[1], ttl); redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "  end\n"
    "  local reset = 0\n"
    "  if n + cost > 0 then reset = math.ceil(W / 1000) end\n"
    "  return {1, L - n - cost, 0, reset}\n"
    "end\n"
    "local retry = -1\n"
    "if cost <= L then\n"
    "  local e = redis.call('ZRANGE', KEYS[1], n + cost - L - 1, n + cost - L - 1, 'WITHSCORES')\n"
    "  retry = math.ceil((tonumber(e[2]) + W - now) / 1000)\n"
    "  if retry < 0 then retry = 0 end\n"
    "end\n"
    "local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')\n"
    "local reset = 0\n"
    "if last[2] then reset = math.ceil((tonumber(last[2]) + W - now) / 1000) end\n"
    "return {0, L - n, retry, reset}\n";

/* Refunds (a later layer of a layered check denied): give back what an allowed script took.
 * Same KEYS and ARGV as the check; they return 1. */
static const char rl__lua_bucket_refund[] =
    "local z = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local back = tonumber(ARGV[3]) * tonumber(ARGV[1])\n"
    "if z > 0 then\n"
    "  z = z - back; if z < 0 then z = 0 end\n"
    "  redis.call('SET', KEYS[1], string.format('%d', z), 'PX', tonumber(ARGV[4]))\n"
    "end\n"
    "return 1\n";

static const char rl__lua_fixed_refund[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local k = KEYS[1] .. ':' .. math.floor(now / tonumber(ARGV[1]))\n"
    "local used = tonumber(redis.call('GET', k) or '0')\n"
    "local back = tonumber(ARGV[3]); if back > used then back = used end\n"
    "if back > 0 then redis.call('DECRBY', k, back) end\n"
    "return 1\n";

/* The most recent entries go: the same count as ours, whoever they were. */
static const char rl__lua_sliding_log_refund[] =
    "redis.call('ZPOPMAX', KEYS[1], tonumber(ARGV[3]))\n"
    "return 1\n";

#endif
