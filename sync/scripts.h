/*
 * The STRICT mode's Lua scripts: every check is one atomic script in Redis (EVALSHA), exact
 * cluster-wide. They are the Redis twins of lib/algo.c's algorithms, with two differences forced
 * by Lua (numbers are doubles, exact only up to 2^53): time is in microseconds, taken from the
 * Redis server's TIME (one clock for the whole cluster), and the bucket keeps its fractional
 * microsecond exactly as a second integer (below).
 *
 * Every script returns {allowed (0/1), remaining, retry_after_ms (-1 = never), reset_after_ms}
 * and sets a TTL on every key it writes (ARGV ttl_ms), so Redis memory stays bounded.
 * Keys carry a hash tag ({...}) so that in Redis Cluster each script's keys share one slot.
 */
#ifndef RL_SYNC_SCRIPTS_H
#define RL_SYNC_SCRIPTS_H

/* Token bucket and GCRA, exact: KEYS[1] holds the full time Z = zi + r / L microseconds as the
 * string "zi:r" (0 <= r < L; a plain "zi" from an older version reads as r = 0). Everything is
 * kept times L, in integers: the backlog b = (Z - now) * L, a request adds exactly W, the
 * capacity is C * W. rl.c refuses a STRICT bucket with C * W > 2^52 (algo.c), so every value
 * here is an integer below 2^53, where Lua's doubles are exact; idiv() corrects the one
 * rounding of a double division. ARGV: W_us, L, C, cost, ttl_ms. */
#define RL_LUA_IDIV                                                                                \
    "local function idiv(a, b)\n"                                                                  \
    "  local q = math.floor(a / b)\n"                                                              \
    "  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end\n"                   \
    "  return q\n"                                                                                 \
    "end\n"                                                                                        \
    "local function zparse(s)\n"                                                                   \
    "  local zi, r = string.match(s or '0', '^(%-?%d+):?(%d*)$')\n"                                \
    "  return tonumber(zi) or 0, tonumber(r) or 0\n"                                               \
    "end\n"
static const char rl__lua_bucket[] = RL_LUA_IDIV
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local W = tonumber(ARGV[1]); local L = tonumber(ARGV[2]); local C = tonumber(ARGV[3])\n"
    "local cost = tonumber(ARGV[4]); local ttl = tonumber(ARGV[5])\n"
    "local zi, r = zparse(redis.call('GET', KEYS[1]))\n"
    "local CW = C * W\n"
    "local b = 0\n"
    "if zi >= now then b = (zi - now) * L + r end\n"
    "if b > CW then b = CW end\n"
    "local inc = cost * W\n"
    "if inc <= CW and b + inc <= CW then\n"
    "  local nb = b + inc\n"
    "  if cost > 0 then\n"
    "    local q = idiv(nb, L)\n"
    "    redis.call('SET', KEYS[1], string.format('%d:%d', now + q, nb - q * L), 'PX', ttl)\n"
    "  end\n"
    "  return {1, idiv(CW - nb, W), 0, -idiv(-nb, L * 1000)}\n"
    "end\n"
    "local retry = -1\n"
    "if inc <= CW then retry = -idiv(-(b + inc - CW), L * 1000) end\n"
    "local rem = 0\n"
    "if b < CW then rem = idiv(CW - b, W) end\n"
    "return {0, rem, retry, -idiv(-b, L * 1000)}\n";

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
static const char rl__lua_bucket_refund[] = RL_LUA_IDIV
    "local s = redis.call('GET', KEYS[1])\n"
    "if s then\n"
    "  local zi, r = zparse(s)\n"
    "  local L = tonumber(ARGV[2])\n"
    "  local x = r - tonumber(ARGV[4]) * tonumber(ARGV[1])\n"
    "  local q = idiv(x, L)\n"
    "  zi = zi + q; r = x - q * L\n"
    "  if zi < 0 then zi, r = 0, 0 end\n"
    "  redis.call('SET', KEYS[1], string.format('%d:%d', zi, r), 'PX', tonumber(ARGV[5]))\n"
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
