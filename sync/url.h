/*
 * Redis URLs (REDIS_URL, rl_options.redis_url). Internal.
 *
 *   redis://[[user]:password@]host[:port][/db]          port 6379, db 0 by default
 *   unix://[[user]:password@]/path/to/socket[?db=N]
 *   redis-sentinel://[[user]:password@]host:port[,host:port...]/master-name[/db]
 *   redis-cluster://[[user]:password@]host:port[,host:port...]
 *   rediss://...                                         -ENOTSUP: TLS is not in this build
 *
 * user and password are percent-decoded. Hosts may be names, IPv4, or [IPv6]. The password is
 * never copied into an error message; use rl__redis_url_redact() to print a URL.
 */
#ifndef RL_SYNC_URL_H
#define RL_SYNC_URL_H

#include <stddef.h>

enum rl_redis_kind { RL_REDIS_TCP, RL_REDIS_UNIX, RL_REDIS_SENTINEL, RL_REDIS_CLUSTER };

#define RL_REDIS_MAX_HOSTS 16

struct rl_redis_host {
    char host[256]; /* without brackets for IPv6 */
    int port;
};

struct rl_redis_url {
    enum rl_redis_kind kind;
    struct rl_redis_host hosts[RL_REDIS_MAX_HOSTS]; /* TCP: one; sentinel/cluster: the seeds */
    size_t nhosts;
    char path[108];     /* UNIX: the socket path */
    char master[128];   /* SENTINEL: the master's name */
    int db;             /* SELECT; 0 by default (cluster: always 0) */
    char user[128];     /* ACL user, "" for none (AUTH password alone) */
    char password[256]; /* "" for none */
};

/* Parses url into *out. -EINVAL with a message naming what is wrong and where (never the
 * password), -ENOTSUP for rediss://, -ENAMETOOLONG for a part longer than its field. */
int rl__redis_url_parse(const char *url, struct rl_redis_url *out);

/* Writes url with any password replaced by "***" (for logs and rlctl); returns the length
 * or -ENOSPC. An unparsable url is written as "<invalid redis url>". */
int rl__redis_url_redact(const char *url, char *out, size_t len);

#endif
