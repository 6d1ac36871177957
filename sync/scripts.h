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
 *
 * The scripts are the files sync/strict_*.lua, embedded at build time by scripts/embed.py (as
 * global.lua and monitor.lua): this header declares the arrays under the names strict.c, the
 * tests and rl-bench use. A program outside librl that uses them compiles the embedded lua.c
 * (lib/meson.build's lua_c) too: librl exports only rl_* symbols.
 */
#ifndef RL_SYNC_SCRIPTS_H
#define RL_SYNC_SCRIPTS_H

/* sync/global.lua (the GLOBAL sync batch) and sync/monitor.lua (the monitoring push). */
extern const char rl__embed_global[];
extern const char rl__embed_monitor[];

/* sync/strict_bucket.lua (token bucket and GCRA, exact) and its refund. */
extern const char rl__embed_strict_bucket[];
extern const char rl__embed_strict_bucket_refund[];
/* sync/strict_fixed.lua (fixed window) and its refund. */
extern const char rl__embed_strict_fixed[];
extern const char rl__embed_strict_fixed_refund[];
/* sync/strict_sliding_log.lua (exact sliding log) and its refund. */
extern const char rl__embed_strict_sliding_log[];
extern const char rl__embed_strict_sliding_log_refund[];

#define rl__lua_bucket             rl__embed_strict_bucket
#define rl__lua_bucket_refund      rl__embed_strict_bucket_refund
#define rl__lua_fixed              rl__embed_strict_fixed
#define rl__lua_fixed_refund       rl__embed_strict_fixed_refund
#define rl__lua_sliding_log        rl__embed_strict_sliding_log
#define rl__lua_sliding_log_refund rl__embed_strict_sliding_log_refund

#endif
