/*
 * Redis connections (hiredis, synchronous API) and a thread-safe pool of them. Internal.
 *
 * One struct rl_redis is one connection to one Redis server: the server named by a redis:// or
 * unix:// URL, or the current master of a redis-sentinel:// URL; or, for a redis-cluster:// URL,
 * one connection to a whole Redis Cluster (below). It is used by one thread at a time. Every
 * function returns 0 or a negative errno-style code and sets rl_errmsg(); messages name the
 * user and host:port, never the password.
 *
 * Codes:
 *   -ECONNREFUSED, -EHOSTUNREACH  connecting failed (refused; unresolvable or unreachable host)
 *   -ETIMEDOUT      connecting or a command took longer than its timeout
 *   -ECONNRESET     the connection was lost (reset, closed by the server, protocol garbage)
 *   -EACCES         AUTH failed (WRONGPASS) or the server wants a password (NOAUTH)
 *   -EPERM          the ACL user may not run the command or touch the key (NOPERM)
 *   -EROFS          READONLY: the server is a replica (a sentinel failover happened); the
 *                   connection is dropped so that the next call re-resolves the master
 *   -EIO            any other error reply; its text is in rl_errmsg()
 *   -EAGAIN         fail-fast: the connection is backing off after failed connects, the pool's
 *                   circuit breaker is open, or no pooled connection became free in time
 *   -ENXIO          (sentinel) no sentinel knows the master's name
 *   -ENOENT         NOSCRIPT, from rl__redis_cmd (rl__redis_evalsha handles it)
 *   -EINVAL         a bad argument or call sequence, SELECT refused (no such db), or (cluster)
 *                   keys of one command in different hash slots (CROSSSLOT), or a
 *                   redis-cluster:// seed that is not a cluster node
 *   -ENOTSUP        pipelining on a redis-cluster:// connection; -ENOMEM
 *
 * Reconnection: after an I/O error (timeout, reset) the connection is closed and the next call
 * reconnects at once. A connect (or handshake) that fails arms a backoff: 50 ms doubling to
 * 2 s, each delay drawn uniformly from [d/2, d] (jitter); until it expires calls fail with
 * -EAGAIN without touching the network. A successful connect resets it.
 *
 * The handshake on every (re)connect: AUTH (user and password, or password alone), SELECT db
 * (when not 0), PING, and for sentinel URLs ROLE (must be "master").
 *
 * Time bounds (deadlines, not timeouts: nothing a peer sends or withholds stretches them; the
 * sockets are non-blocking and every wait is a poll(2) against CLOCK_MONOTONIC):
 *   - a connect, its handshake and (sentinel) the master's discovery, all together, end at
 *     connect_ms from the connect's start; a command (send and reply) at command_ms from its
 *     start; a pipelined get_reply at command_ms from its own start;
 *   - every call through an entry point of this header (a command, an EVALSHA with its SCRIPT
 *     LOAD and NOSCRIPT retry, a cluster call with its CLUSTER SLOTS refresh and redirects, a
 *     get_reply) also ends at its call deadline: connect_ms + command_ms from the call's start,
 *     or an earlier one the caller set with rl__redis_set_deadline.
 *   Only name resolution (getaddrinfo of a host name: /etc/hosts, DNS) is outside the bound;
 *   numeric addresses and unix sockets resolve nothing.
 * Replies are refused (-ECONNRESET) beyond RL_REDIS_REPLY_MAX bytes: a bulk length or array
 * count that announces more is refused when its header arrives.
 *   -ECANCELED     the cancel fd became readable (rl__redis_set_cancel)
 *
 * SIGPIPE: never raised by these calls (blocked around hiredis's writes, see conn.c); a
 * write to a reset connection is -ECONNRESET.
 *
 * Fork: a connection remembers the pid that opened its socket; used in another process (a
 * forked child), it drops the inherited socket (close(2) only: nothing is sent on the parent's
 * stream) and reconnects. rl__pool_after_fork_child() does that for a whole pool at once.
 *
 * Redis Cluster (redis-cluster://[user:password@]host:port[,host:port...]; db 0 only):
 *   - Connecting asks the seeds in turn (AUTH, PING, CLUSTER SLOTS) for the slot map: 16384
 *     slots -> the master's host:port. The struct keeps one connection per master, made on
 *     first use with the same timeouts and handshake (AUTH, PING; never SELECT), each with the
 *     backoff above; a forked child reconnects each node it uses. A wrong password is -EACCES
 *     at the first seed (the other seeds are not tried), as for a single server.
 *   - Routing: a key's slot is CRC16-XMODEM of its hash tag (the bytes between the first '{'
 *     and the next '}', if not empty) or of the whole key, mod 16384 (rl__redis_key_slot).
 *     rl__redis_evalsha goes to the master of its first key's slot; keys in several slots are
 *     -EINVAL (CROSSSLOT) before anything is sent. rl__redis_cmd/_argv route by the command's
 *     first key as rl knows it (EVAL/EVALSHA/FCALL: the first key after numkeys; commands
 *     without keys, PING, INFO, SCRIPT, CLUSTER, ...: any connected node; others: the first
 *     argument, a -MOVED corrects a wrong guess); rl__redis_cmd_key routes by a given key.
 *     SCRIPT LOAD for rl__redis_evalsha runs on the node that runs (or answered NOSCRIPT for)
 *     the script; a SCRIPT LOAD sent by the caller reaches one node only.
 *   - Redirects: -MOVED slot host:port updates the slot's entry, refreshes the whole map (at
 *     most every RL_CLUSTER_REFRESH_MS) and retries there; -ASK slot host:port sends ASKING and
 *     the command to that node, the map unchanged; more than RL_CLUSTER_MAX_REDIRECTS of them
 *     for one call is -EIO with the last one's text. -TRYAGAIN is retried once after
 *     RL_CLUSTER_TRYAGAIN_MS (at most the command timeout), then returned as -EIO.
 *   - A node's connection lost, refused or backing off fails that call with the node's code
 *     and marks the map stale: the next call refreshes it (CLUSTER SLOTS from a connected
 *     node, else another, else the seeds) and reconnects that node when it is still a master;
 *     so do READONLY (-EROFS) and CLUSTERDOWN (-EIO) replies. A failed refresh keeps the map.
 *   - Pipelining (rl__redis_append/_get_reply) is refused with -ENOTSUP: replies would come
 *     from several nodes and redirects would reorder them; send commands one at a time.
 *   - Pool: every pooled connection is a cluster connection with its own map; any node's
 *     connect failures and timeouts count for the one circuit breaker.
 *   - ACL: the user also needs +cluster|slots and +asking.
 */
#ifndef RL_SYNC_CONN_H
#define RL_SYNC_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "sync/url.h"

struct rl_redis;
struct rl_redis_pool;

/* Connects now (sentinel: resolves the master first). On success *out owns a new connection;
 * on error *out is NULL. 0 timeouts mean the defaults (200 and 100 ms). */
int rl__redis_connect(const struct rl_redis_url *u, unsigned connect_ms, unsigned command_ms,
                      struct rl_redis **out);

/* The same without connecting: the first call that needs the server connects. Fails only with
 * -EINVAL, -ENOTSUP or -ENOMEM. */
int rl__redis_new(const struct rl_redis_url *u, unsigned connect_ms, unsigned command_ms,
                  struct rl_redis **out);

/* The deadline (CLOCK_MONOTONIC ns, rl__mono_ns) of the calls that follow on c, until set to 0
 * again: every exchange stops there whatever its own budget (see "Time bounds"). 0: each
 * entry point gets connect_ms + command_ms from its start. */
void rl__redis_set_deadline(struct rl_redis *c, uint64_t deadline_ns);

/* A file descriptor that, once readable, makes every exchange on c fail at once with
 * -ECANCELED (an eventfd a closing handle writes to); -1: none (the default). Not owned. */
void rl__redis_set_cancel(struct rl_redis *c, int fd);

/* fn(arg) is called about every every_ns while an exchange on c waits for the peer (on the
 * calling thread, between polls; fn must not use c). The GLOBAL sync thread keeps its fallback
 * going with it. fn NULL or every_ns 0: none. */
void rl__redis_set_wait_hook(struct rl_redis *c, void (*fn)(void *), void *arg, uint64_t every_ns);

/* Closes (QUIT is not sent) and frees. NULL is a no-op. */
void rl__redis_close(struct rl_redis *c);

/* Closes the socket without sending anything; the next call reconnects without backoff. */
void rl__redis_drop(struct rl_redis *c);

/* True when the connection currently has an open socket. */
bool rl__redis_connected(const struct rl_redis *c);

/* "host:port" (or the socket path) of the server last connected to, or of the first URL host
 * before any connect. Valid until the next call on c. */
const char *rl__redis_where(const struct rl_redis *c);

/* One command, hiredis format (%s, %b, %d...). On success returns 0 and, when reply is not
 * NULL, *reply (free it with freeReplyObject); an error reply is not a success: *reply is NULL
 * and the code says what happened (see above). */
int rl__redis_cmd(struct rl_redis *c, redisReply **reply, const char *fmt, ...);
int rl__redis_cmd_argv(struct rl_redis *c, redisReply **reply, int argc, const char **argv,
                       const size_t *argvlen);

/* rl__redis_cmd sent, on a cluster connection, to the master of key[0..keylen)'s slot whatever
 * the command (still following redirects); on any other connection the same as rl__redis_cmd. */
int rl__redis_cmd_key(struct rl_redis *c, const void *key, size_t keylen, redisReply **reply,
                      const char *fmt, ...);

/* The Redis Cluster hash slot (0..16383) of key[0..len), hash tags included; -EINVAL for a NULL
 * key of non-zero length. */
int rl__redis_key_slot(const void *key, size_t len);

/* EVALSHA of script_src with argv[0..nkeys) as keys and argv[nkeys..argc) as arguments
 * (argvlen NULL: strlen). sha1_hex is the script's SHA1 when the caller knows it, else NULL:
 * the connection learns it with SCRIPT LOAD and caches it (by the script's content). On
 * NOSCRIPT (a restarted or failed-over server, SCRIPT FLUSH) the script is loaded and the call
 * retried once; a given sha1_hex that SCRIPT LOAD does not confirm is -EINVAL. */
int rl__redis_evalsha(struct rl_redis *c, const char *script_src, const char *sha1_hex, int nkeys,
                      int argc, const char **argv, const size_t *argvlen, redisReply **reply);

/* Pipelining: append commands (buffered, nothing sent), then read one reply per command with
 * rl__redis_get_reply, which sends the buffer first. An error reply fails only its own
 * get_reply (-EIO, -EROFS, ...). When the connection breaks, this and every remaining
 * get_reply of the batch fail with the same code. rl__redis_cmd is refused (-EINVAL) while
 * replies are pending. */
int rl__redis_append(struct rl_redis *c, const char *fmt, ...);
int rl__redis_append_argv(struct rl_redis *c, int argc, const char **argv, const size_t *argvlen);
int rl__redis_get_reply(struct rl_redis *c, redisReply **reply);

/* ---- the pool ------------------------------------------------------------------------------ */

/*
 * A fixed number of connections shared by any number of threads. Opening never touches the
 * network (connections are made on first use), so it never fails because Redis is down.
 *
 * Circuit breaker: 5 consecutive failures of pooled connections (connect failures, timeouts,
 * resets) open it; for 1 s rl__pool_get fails fast with -EAGAIN; then one caller gets a
 * connection as a probe while the others keep failing fast: its next command's outcome closes
 * the breaker (success, including an error reply: the server answered) or opens it for 1 s
 * more. Any success resets the count.
 */
int rl__pool_open(const struct rl_redis_url *u, unsigned size, unsigned connect_ms,
                  unsigned command_ms, struct rl_redis_pool **out);

/* A connection for the calling thread's exclusive use until rl__pool_put. Waits at most the
 * command timeout for one to be free, then -EAGAIN; -EAGAIN at once while the breaker is open.
 * The connection may be unconnected: the first command connects it. Its call deadline (see
 * "Time bounds") is connect_ms + command_ms from this call's start, for everything done with
 * it until rl__pool_put: one STRICT check, rl_health, rl_reset each end within that bound. */
int rl__pool_get(struct rl_redis_pool *p, struct rl_redis **out);

/* Gives a connection back (a broken one too: it reconnects on next use). NULL is a no-op. */
void rl__pool_put(struct rl_redis_pool *p, struct rl_redis *c);

/* Closes every connection and frees the pool. No connection may be checked out. */
void rl__pool_close(struct rl_redis_pool *p);

/* In a child after fork(): drops every connection's inherited socket without sending anything
 * (the parent keeps using them) and re-initialises the pool's lock. Connections that threads
 * of the parent had checked out are taken back (those threads do not exist in the child); the
 * calling thread must not hold one. */
void rl__pool_after_fork_child(struct rl_redis_pool *p);

struct rl_pool_stats {
    unsigned size, idle;
    unsigned connected; /* idle connections with an open socket */
    unsigned consecutive_failures;
    bool breaker_open; /* failing fast now (a probe may be let through) */
    uint64_t breaker_trips;
};
void rl__pool_stats(struct rl_redis_pool *p, struct rl_pool_stats *out);

#define RL_REDIS_BACKOFF_MIN_MS  50u
#define RL_REDIS_BACKOFF_MAX_MS  2000u
#define RL_POOL_BREAKER_FAILURES 5u
#define RL_POOL_BREAKER_OPEN_MS  1000u
#define RL_REDIS_CONNECT_MS_DEF  200u
#define RL_REDIS_COMMAND_MS_DEF  100u
#define RL_REDIS_SENTINEL_ROUNDS 3u
#define RL_CLUSTER_MAX_REDIRECTS 5u
#define RL_CLUSTER_REFRESH_MS    100u
#define RL_CLUSTER_TRYAGAIN_MS   25u
#define RL_REDIS_REPLY_MAX       (4u << 20) /* bytes one reply may announce (4 MiB) */

#endif
