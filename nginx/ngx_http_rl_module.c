/*
 * ngx_http_rl_module: rl's shared-memory rate limits inside nginx, with limit_req's syntax.
 *
 * Directives (docs/nginx.md is the user's page):
 *   http:            rl_req_zone KEY zone=NAME:SIZE [rate=N r/s|r/m|r/h|r/d] [mode=local|global]
 *                                [algorithm=token_bucket|sliding_window|fixed_window]
 *                                [shm=/NAME] [shm_mode=0600];
 *                    rl_redis URL [sync=100ms] [fallback=local|open|closed];
 *   http/server/loc: rl_req zone=NAME [burst=N] [nodelay | delay=N];
 *                    rl_req_status CODE; rl_req_log_level info|notice|warn|error;
 *                    rl_req_dry_run on|off; rl_req_headers off|on|ietf;
 *   variable:        $rl_req_status (PASSED, DELAYED, REJECTED, DELAYED_DRY_RUN, REJECTED_DRY_RUN)
 *
 * How limit_req maps onto rl. limit_req keeps per key an `excess` (requests above the rate, in
 * thousandths) that drains at the rate; a request raises it by one and is refused when the new
 * excess would pass `burst`. That is exactly a token bucket of capacity burst + 1 refilled at the
 * rate, where excess = capacity - 1 - tokens left: so every zone is an rl token bucket of
 * capacity K = (largest burst of any rl_req naming the zone) + 1, kept in a segment of its own
 * (the zone's size bounds its keys). A limit with a smaller burst B takes K - B tokens (there
 * must be that much headroom) and gives K - B - 1 back at once, so the net charge is one request
 * whatever the burst, and every location naming a zone shares one counter per key, as in nginx.
 * Requests are delayed while excess > delay, i.e. while fewer than K - 1 - delay tokens are
 * left, for (excess - delay) / rate: rl's reset_after (time back to a full bucket) minus
 * (delay + 1) / rate. Rejected requests take nothing (rl_acquire is all or nothing); several
 * limits are charged in order and the ones already charged are refunded when one refuses.
 *
 * Process model. The configuration only parses and validates: nothing is opened in the master
 * or under `nginx -t`. Each worker (and a single-process nginx) opens the zones' segments in
 * init_process, after nginx switched to the configured user; cache manager and loader processes
 * open nothing, so they start no sync thread. Segments outlive the processes: a reload or a
 * binary upgrade attaches the same segments and keeps the counts.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <rl/rl.h>
#include <xxhash.h>

/* $rl_req_status values, as limit_req's. */
#define RL_NGX_PASSED           1
#define RL_NGX_DELAYED          2
#define RL_NGX_REJECTED         3
#define RL_NGX_DELAYED_DRY_RUN  4
#define RL_NGX_REJECTED_DRY_RUN 5

#define RL_NGX_HEADERS_OFF  0
#define RL_NGX_HEADERS_ON   1
#define RL_NGX_HEADERS_IETF 2

/* Keys per MiB of zone size: limit_req keeps "about 16 thousand" 64-byte states per megabyte. */
#define RL_NGX_KEYS_PER_MB 16384

#define RL_NGX_NODELAY UINT64_MAX

typedef struct {
    ngx_str_t name;
    ngx_http_complex_value_t key;
    size_t size; /* 0: named by rl_req but not declared (yet) */
    uint64_t requests;
    uint64_t window_ms;
    rl_mode mode;
    rl_algorithm algorithm;
    char shm[210];
    ngx_uint_t shm_mode;
    uint64_t capacity_k; /* the bucket's capacity: largest burst + 1 */
    rl_limit lim;
    rl_t *rl; /* opened in init_process */
    u_char *file;
    ngx_uint_t line;
} ngx_http_rl_zone_t;

typedef struct {
    ngx_array_t zones; /* of ngx_http_rl_zone_t * */
    char *redis_url;   /* NUL-terminated, NULL: no Redis */
    ngx_msec_t sync_ms;
    int fallback;
    /* rl_rules: rl's YAML rule file, checked with rl_check() for every request. */
    char *rules_path;
    char rules_shm[210];
    ngx_http_complex_value_t *rules_user;
    ngx_http_complex_value_t *rules_tier;
    rl_t *rules_rl; /* opened in init_process */
} ngx_http_rl_main_conf_t;

typedef struct {
    ngx_http_rl_zone_t *zone;
    uint64_t burst;
    uint64_t delay; /* RL_NGX_NODELAY for nodelay */
} ngx_http_rl_limit_t;

typedef struct {
    ngx_array_t limits; /* elts NULL: unset (inherited) */
    ngx_uint_t status_code;
    ngx_uint_t limit_log_level;
    ngx_uint_t delay_log_level;
    ngx_flag_t dry_run;
    ngx_uint_t headers;
} ngx_http_rl_loc_conf_t;

/* Per request, on r->main; survives internal redirects (found again through the pool cleanup). */
typedef struct {
    ngx_uint_t status;
    unsigned have_result : 1;
    unsigned headers_sent : 1;
    ngx_uint_t headers;
    rl_result res;
    uint64_t window_ms;
    rl_algorithm algorithm;
    rl_mode mode;
} ngx_http_rl_ctx_t;

static ngx_int_t ngx_http_rl_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_rl_add_variables(ngx_conf_t *cf);
static void *ngx_http_rl_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_rl_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_rl_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_rl_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
static char *ngx_http_rl_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_rl_req_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_rl_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_rl_rules_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_rl_init_process(ngx_cycle_t *cycle);
static void ngx_http_rl_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_rl_open_all(ngx_cycle_t *cycle, ngx_http_rl_main_conf_t *mcf);

static ngx_conf_enum_t ngx_http_rl_log_levels[] = {
    {ngx_string("info"), NGX_LOG_INFO},
    {ngx_string("notice"), NGX_LOG_NOTICE},
    {ngx_string("warn"), NGX_LOG_WARN},
    {ngx_string("error"), NGX_LOG_ERR},
    {ngx_null_string, 0},
};

static ngx_conf_enum_t ngx_http_rl_headers_values[] = {
    {ngx_string("off"), RL_NGX_HEADERS_OFF},
    {ngx_string("on"), RL_NGX_HEADERS_ON},
    {ngx_string("ietf"), RL_NGX_HEADERS_IETF},
    {ngx_null_string, 0},
};

static ngx_conf_num_bounds_t ngx_http_rl_status_bounds = {ngx_conf_check_num_bounds, 400, 599};

static ngx_command_t ngx_http_rl_commands[] = {
    {ngx_string("rl_req_zone"), NGX_HTTP_MAIN_CONF | NGX_CONF_2MORE, ngx_http_rl_zone_directive, 0,
     0, NULL},
    {ngx_string("rl_req"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE123,
     ngx_http_rl_req_directive, NGX_HTTP_LOC_CONF_OFFSET, 0, NULL},
    {ngx_string("rl_req_log_level"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_enum_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_rl_loc_conf_t, limit_log_level), &ngx_http_rl_log_levels},
    {ngx_string("rl_req_status"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_num_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_rl_loc_conf_t, status_code),
     &ngx_http_rl_status_bounds},
    {ngx_string("rl_req_dry_run"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
     ngx_conf_set_flag_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_rl_loc_conf_t, dry_run),
     NULL},
    {ngx_string("rl_req_headers"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_enum_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_rl_loc_conf_t, headers),
     &ngx_http_rl_headers_values},
    {ngx_string("rl_redis"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE123, ngx_http_rl_redis_directive, 0,
     0, NULL},
    {ngx_string("rl_rules"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE12, ngx_http_rl_rules_directive, 0,
     0, NULL},
    {ngx_string("rl_rules_user"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
     ngx_http_set_complex_value_slot, NGX_HTTP_MAIN_CONF_OFFSET,
     offsetof(ngx_http_rl_main_conf_t, rules_user), NULL},
    {ngx_string("rl_rules_tier"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
     ngx_http_set_complex_value_slot, NGX_HTTP_MAIN_CONF_OFFSET,
     offsetof(ngx_http_rl_main_conf_t, rules_tier), NULL},
    ngx_null_command,
};

static ngx_http_module_t ngx_http_rl_module_ctx = {
    ngx_http_rl_add_variables,    /* preconfiguration */
    ngx_http_rl_init,             /* postconfiguration */
    ngx_http_rl_create_main_conf, /* create main configuration */
    ngx_http_rl_init_main_conf,   /* init main configuration */
    NULL,                         /* create server configuration */
    NULL,                         /* merge server configuration */
    ngx_http_rl_create_loc_conf,  /* create location configuration */
    ngx_http_rl_merge_loc_conf,   /* merge location configuration */
};

ngx_module_t ngx_http_rl_module = {
    NGX_MODULE_V1,
    &ngx_http_rl_module_ctx,  /* module context */
    ngx_http_rl_commands,     /* module directives */
    NGX_HTTP_MODULE,          /* module type */
    NULL,                     /* init master */
    NULL,                     /* init module */
    ngx_http_rl_init_process, /* init process */
    NULL,                     /* init thread */
    NULL,                     /* exit thread */
    ngx_http_rl_exit_process, /* exit process */
    NULL,                     /* exit master */
    NGX_MODULE_V1_PADDING,
};

static ngx_str_t ngx_http_rl_status_names[] = {
    ngx_string("PASSED"),          ngx_string("DELAYED"),          ngx_string("REJECTED"),
    ngx_string("DELAYED_DRY_RUN"), ngx_string("REJECTED_DRY_RUN"),
};

static ngx_http_output_header_filter_pt ngx_http_next_header_filter;

/* The zones of the configuration the running worker was started with (init_process). */
static ngx_http_rl_main_conf_t *ngx_http_rl_worker_conf;

/* ------------------------------------------------------------------------------------------ */
/* Per-request context                                                                          */

static void ngx_http_rl_ctx_cleanup(void *data)
{
    (void)data; /* a marker: the pool frees the context */
}

/* The request's context, kept on r->main. An internal redirect zeroes the module contexts, so the
 * context is also registered as the data of a pool cleanup that marks it and is found again. */
static ngx_http_rl_ctx_t *ngx_http_rl_get_ctx(ngx_http_request_t *r, ngx_flag_t create)
{
    ngx_http_request_t *m = r->main;
    ngx_http_rl_ctx_t *ctx = ngx_http_get_module_ctx(m, ngx_http_rl_module);
    if (ctx != NULL)
        return ctx;
    for (ngx_pool_cleanup_t *c = m->pool->cleanup; c != NULL; c = c->next) {
        if (c->handler == ngx_http_rl_ctx_cleanup) {
            ctx = c->data;
            ngx_http_set_ctx(m, ctx, ngx_http_rl_module);
            return ctx;
        }
    }
    if (!create)
        return NULL;
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(m->pool, sizeof(ngx_http_rl_ctx_t));
    if (cln == NULL)
        return NULL;
    ctx = cln->data;
    ngx_memzero(ctx, sizeof(*ctx));
    cln->handler = ngx_http_rl_ctx_cleanup;
    ngx_http_set_ctx(m, ctx, ngx_http_rl_module);
    return ctx;
}

/* ------------------------------------------------------------------------------------------ */
/* The PREACCESS handler                                                                        */

/* (D + 1) / rate, in whole milliseconds rounded up as rl rounds its times. */
static uint64_t ngx_http_rl_ms_for(const ngx_http_rl_zone_t *z, uint64_t n)
{
    return (n * z->window_ms + z->requests - 1) / z->requests;
}

/* excess in thousandths of a request, as limit_req logs it, from a decision's reset_after. */
static uint64_t ngx_http_rl_excess(const ngx_http_rl_zone_t *z, const rl_result *res,
                                   uint64_t net_remaining, ngx_flag_t allowed, uint64_t burst)
{
    if (z->algorithm != RL_TOKEN_BUCKET) {
        (void)burst;
        return allowed ? 0 : 1000;
    }
    /* Time back to a full bucket x rate = requests above the rate (+1 when this one was taken). */
    uint64_t e = res->reset_after_ms * z->requests * 1000 / z->window_ms;
    if (allowed)
        e = e > 1000 ? e - 1000 : 0;
    (void)net_remaining;
    return e;
}

static void ngx_http_rl_delay_handler(ngx_http_request_t *r)
{
    ngx_event_t *wev = r->connection->write;
    if (wev->delayed) {
        /* Woken early by the client: keep waiting for the timer. */
        if (ngx_handle_write_event(wev, 0) != NGX_OK)
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }
    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }
    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}

/* The key bytes for rl: the key itself, or "#" + its 128-bit hash when longer than rl takes. */
static int ngx_http_rl_key(const ngx_str_t *key, u_char *buf, const void **kp, size_t *kl)
{
    if (key->len <= RL_KEY_MAX) {
        *kp = key->data;
        *kl = key->len;
        return 0;
    }
    XXH128_hash_t h = XXH3_128bits(key->data, key->len);
    buf[0] = '#';
    ngx_memcpy(buf + 1, &h, sizeof(h));
    *kp = buf;
    *kl = 1 + sizeof(h);
    return 0;
}

/* A NUL-terminated copy of s in the request's pool; NULL for an empty string. */
static char *ngx_http_rl_cstr(ngx_http_request_t *r, const u_char *data, size_t len)
{
    if (len == 0)
        return NULL;
    char *p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL)
        return NULL;
    ngx_memcpy(p, data, len);
    p[len] = '\0';
    return p;
}

static char *ngx_http_rl_cv(ngx_http_request_t *r, ngx_http_complex_value_t *cv)
{
    ngx_str_t v;
    if (cv == NULL || ngx_http_complex_value(r, cv, &v) != NGX_OK)
        return NULL;
    return ngx_http_rl_cstr(r, v.data, v.len);
}

/* rl_check() of the request against rl_rules: NGX_OK allowed (into *best for the headers when
 * it limits more), NGX_DECLINED refused (logged), NGX_ERROR out of memory. An rl error lets the
 * request pass, logged. */
static ngx_int_t ngx_http_rl_rules_check(ngx_http_request_t *r, ngx_http_rl_main_conf_t *mcf,
                                         ngx_http_rl_loc_conf_t *lcf, ngx_http_rl_ctx_t *best)
{
    rl_request q;
    ngx_memzero(&q, sizeof(q));
    q.method = ngx_http_rl_cstr(r, r->method_name.data, r->method_name.len);
    q.path = ngx_http_rl_cstr(r, r->uri.data, r->uri.len);
    q.ip = ngx_http_rl_cstr(r, r->connection->addr_text.data, r->connection->addr_text.len);
    if (q.method == NULL || q.path == NULL)
        return NGX_ERROR;
    q.user = ngx_http_rl_cv(r, mcf->rules_user);
    q.tier = ngx_http_rl_cv(r, mcf->rules_tier);
    rl_decision d;
    int rc = rl_check(mcf->rules_rl, &q, &d);
    if (rc < 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "rl_rules: rl_check failed: %s (%s); request not limited", rl_strerror(rc),
                      rl_errmsg());
        return NGX_OK;
    }
    if (d.limiting >= 0 && (size_t)d.limiting < d.n) {
        const rl_layer *L = &d.layers[d.limiting];
        if (!d.allowed || !best->have_result || L->remaining < best->res.remaining) {
            best->have_result = 1;
            best->res.allowed = L->allowed;
            best->res.limit = L->limit;
            best->res.remaining = L->remaining;
            best->res.retry_after_ms = L->retry_after_ms;
            best->res.reset_after_ms = L->reset_after_ms;
            best->window_ms = L->window_ms;
            best->algorithm = L->algorithm;
            best->mode = L->mode;
        }
        if (!d.allowed) {
            ngx_log_error(lcf->limit_log_level, r->connection->log, 0,
                          "limiting requests%s by rl_rules rule \"%s\" layer \"%s\"",
                          lcf->dry_run ? ", dry run" : "", L->rule, L->name);
        }
    }
    return d.allowed ? NGX_OK : NGX_DECLINED;
}

static ngx_int_t ngx_http_rl_handler(ngx_http_request_t *r)
{
    ngx_http_rl_loc_conf_t *lcf = ngx_http_get_module_loc_conf(r, ngx_http_rl_module);
    ngx_http_rl_main_conf_t *mcf = ngx_http_get_module_main_conf(r, ngx_http_rl_module);
    if (lcf->limits.nelts == 0 && mcf->rules_rl == NULL)
        return NGX_DECLINED;

    ngx_http_rl_ctx_t *ctx = ngx_http_rl_get_ctx(r, 1);
    if (ctx == NULL)
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    if (ctx->status != 0)
        return NGX_DECLINED; /* one charge per request: decided before a redirect or for main */

    ngx_http_rl_limit_t *limits = lcf->limits.elts;
    ngx_uint_t n = lcf->limits.nelts;
    /* What was taken from each limit, to refund when a later one refuses. */
    uint64_t taken[64];
    const void *keys[64];
    size_t keylens[64];
    u_char hashed[64][1 + 16];
    if (n > 64)
        n = 64; /* rl_req refuses more at configuration time */

    ngx_uint_t charged = 0, i;
    ngx_flag_t any = 0, rejected = 0;
    uint64_t max_delay = 0, delay_excess = 0, rej_excess = 0;
    ngx_http_rl_zone_t *delay_zone = NULL, *rej_zone = NULL;
    ngx_http_rl_ctx_t best = {0};
    uint64_t best_remaining = UINT64_MAX;

    for (i = 0; i < n; i++) {
        ngx_http_rl_limit_t *l = &limits[i];
        ngx_http_rl_zone_t *z = l->zone;
        ngx_str_t key;
        taken[i] = 0;
        if (ngx_http_complex_value(r, &z->key, &key) != NGX_OK) {
            rejected = 2; /* internal error, after refunds */
            break;
        }
        if (key.len == 0)
            continue;
        if (key.len > 65535) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "the value of the \"%V\" key is more than 65535 bytes: \"%V\"",
                          &z->key.value, &key);
            continue;
        }
        any = 1;
        if (z->rl == NULL) {
            /* init_process could not open it: it logged why; the request passes unlimited. */
            continue;
        }
        ngx_http_rl_key(&key, hashed[i], &keys[i], &keylens[i]);
        uint64_t cost = 1;
        if (z->algorithm == RL_TOKEN_BUCKET)
            cost = z->capacity_k - l->burst; /* headroom needed; cost - 1 is given back */
        rl_result res;
        int rc = rl_acquire(z->rl, keys[i], keylens[i], &z->lim, cost, &res);
        if (rc == -ENOSPC) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "rl_req zone \"%V\" is full: no idle key to reclaim for a new key "
                          "(raise the zone's size)",
                          &z->name);
            rejected = 3;
            break;
        }
        if (rc < 0) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "rl_req zone \"%V\": rl_acquire failed: %s (%s); request not limited",
                          &z->name, rl_strerror(rc), rl_errmsg());
            continue;
        }
        if (!res.allowed) {
            rej_zone = z;
            rej_excess = ngx_http_rl_excess(z, &res, 0, 0, l->burst);
            best.res = res;
            best.window_ms = z->window_ms;
            best.algorithm = z->algorithm;
            best.mode = z->mode;
            best.have_result = 1;
            if (z->algorithm == RL_TOKEN_BUCKET)
                best.res.limit = l->burst + 1;
            best.res.remaining = 0;
            rejected = 1;
            break;
        }
        taken[i] = cost;
        charged = i + 1;
        uint64_t remaining = res.remaining;
        uint64_t reset = res.reset_after_ms;
        if (cost > 1) {
            (void)rl_refund(z->rl, keys[i], keylens[i], &z->lim, cost - 1);
            taken[i] = 1;
            remaining += cost - 1;
            uint64_t back = ngx_http_rl_ms_for(z, cost - 1);
            reset = reset > back ? reset - back : 0;
        }
        /* Tokens above what this limit must leave untouched: its own remaining. */
        uint64_t reserve = z->capacity_k - 1 - l->burst;
        uint64_t own_remaining = remaining > reserve ? remaining - reserve : 0;
        if (own_remaining < best_remaining) {
            best_remaining = own_remaining;
            best.res = res;
            best.res.remaining = own_remaining;
            best.res.reset_after_ms = reset;
            best.res.limit = z->algorithm == RL_TOKEN_BUCKET ? l->burst + 1 : z->requests;
            best.window_ms = z->window_ms;
            best.algorithm = z->algorithm;
            best.mode = z->mode;
            best.have_result = 1;
        }
        /* GLOBAL: the host's lease does not tell how far the cluster's bucket is above its rate,
         * so a GLOBAL zone passes or refuses, never delays (as nodelay; docs/nginx.md). */
        if (z->algorithm == RL_TOKEN_BUCKET && z->mode == RL_MODE_LOCAL &&
            l->delay != RL_NGX_NODELAY && l->delay < l->burst) {
            /* Delayed while excess > delay: fewer than K - 1 - delay tokens left. */
            uint64_t excess_floor = z->capacity_k - 1 - l->delay;
            if (remaining < excess_floor) {
                uint64_t keep = ngx_http_rl_ms_for(z, l->delay + 1);
                uint64_t d = reset > keep ? reset - keep : 1;
                if (d > max_delay || delay_zone == NULL) {
                    max_delay = d;
                    delay_zone = z;
                    rl_result tmp = res;
                    tmp.reset_after_ms = reset;
                    delay_excess = ngx_http_rl_excess(z, &tmp, 0, 1, l->burst);
                }
            }
        }
    }

    /* rl_rules last: a request it refuses gives back what the zones above took. */
    if (!rejected && mcf->rules_rl != NULL) {
        ngx_int_t rc = ngx_http_rl_rules_check(r, mcf, lcf, &best);
        if (rc == NGX_ERROR)
            rejected = 2;
        else if (rc == NGX_DECLINED)
            rejected = 4;
        else
            any = 1;
    }

    if (rejected) {
        /* All or nothing: give back what the earlier limits took. */
        for (ngx_uint_t j = 0; j < charged; j++) {
            if (taken[j] != 0)
                (void)rl_refund(limits[j].zone->rl, keys[j], keylens[j], &limits[j].zone->lim,
                                taken[j]);
        }
        if (rejected == 2)
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        if (rejected == 1) {
            ngx_log_error(lcf->limit_log_level, r->connection->log, 0,
                          "limiting requests%s, excess: %uL.%03uL by zone \"%V\"",
                          lcf->dry_run ? ", dry run" : "", rej_excess / 1000, rej_excess % 1000,
                          &rej_zone->name);
        }
        ctx->headers = lcf->headers;
        if (best.have_result) {
            ctx->have_result = 1;
            ctx->res = best.res;
            ctx->window_ms = best.window_ms;
            ctx->algorithm = best.algorithm;
            ctx->mode = best.mode;
        }
        if (lcf->dry_run) {
            ctx->status = RL_NGX_REJECTED_DRY_RUN;
            ctx->have_result = 0;
            return NGX_DECLINED;
        }
        ctx->status = RL_NGX_REJECTED;
        return (ngx_int_t)lcf->status_code;
    }

    if (!any)
        return NGX_DECLINED; /* every key empty: not limited, no status (as limit_req) */

    ctx->headers = lcf->headers;
    if (best.have_result) {
        ctx->have_result = 1;
        ctx->res = best.res;
        ctx->window_ms = best.window_ms;
        ctx->algorithm = best.algorithm;
        ctx->mode = best.mode;
    }

    if (max_delay == 0) {
        ctx->status = RL_NGX_PASSED;
        return NGX_DECLINED;
    }

    ngx_log_error(lcf->delay_log_level, r->connection->log, 0,
                  "delaying request%s, excess: %uL.%03uL, by zone \"%V\"",
                  lcf->dry_run ? ", dry run" : "", delay_excess / 1000, delay_excess % 1000,
                  &delay_zone->name);

    if (lcf->dry_run) {
        ctx->status = RL_NGX_DELAYED_DRY_RUN;
        return NGX_DECLINED;
    }
    ctx->status = RL_NGX_DELAYED;

    if (r->connection->read->ready) {
        ngx_post_event(r->connection->read, &ngx_posted_events);
    } else if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_rl_delay_handler;
    r->connection->write->delayed = 1;
    ngx_add_timer(r->connection->write, (ngx_msec_t)max_delay);
    return NGX_AGAIN;
}

/* ------------------------------------------------------------------------------------------ */
/* Headers (rl_req_headers on|ietf)                                                             */

static ngx_int_t ngx_http_rl_push_header(ngx_http_request_t *r, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return NGX_OK;
    size_t klen = (size_t)(colon - line);
    const char *v = colon + 1;
    while (v < line + len && *v == ' ')
        v++;
    size_t vlen = (size_t)(line + len - v);
    ngx_table_elt_t *h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL)
        return NGX_ERROR;
    u_char *p = ngx_pnalloc(r->pool, klen + vlen);
    if (p == NULL)
        return NGX_ERROR;
    ngx_memcpy(p, line, klen);
    ngx_memcpy(p + klen, v, vlen);
    h->hash = 1;
    h->key.data = p;
    h->key.len = klen;
    h->value.data = p + klen;
    h->value.len = vlen;
    h->lowcase_key = NULL;
    return NGX_OK;
}

static ngx_int_t ngx_http_rl_header_filter(ngx_http_request_t *r)
{
    if (r != r->main)
        return ngx_http_next_header_filter(r);
    ngx_http_rl_ctx_t *ctx = ngx_http_rl_get_ctx(r, 0);
    if (ctx == NULL || !ctx->have_result || ctx->headers == RL_NGX_HEADERS_OFF || ctx->headers_sent)
        return ngx_http_next_header_filter(r);
    ctx->headers_sent = 1;

    /* rl's own formatting, from a one-layer decision. */
    rl_decision d;
    ngx_memzero(&d, sizeof(d));
    d.allowed = ctx->status != RL_NGX_REJECTED;
    d.n = 1;
    d.limiting = 0;
    d.now_ns = rl_now_ns();
    rl_layer *L = &d.layers[0];
    L->allowed = ctx->res.allowed;
    L->limit = ctx->res.limit;
    L->remaining = ctx->res.remaining;
    L->retry_after_ms = ctx->res.retry_after_ms;
    L->reset_after_ms = ctx->res.reset_after_ms;
    L->window_ms = ctx->window_ms;
    L->scope = RL_SCOPE_DESCRIPTOR;
    L->algorithm = ctx->algorithm;
    L->mode = ctx->mode;
    char buf[1024];
    unsigned flags = ctx->headers == RL_NGX_HEADERS_IETF ? RL_HEADERS_IETF : RL_HEADERS_LEGACY;
    int len = rl_format_headers_ex(&d, flags, buf, sizeof(buf));
    if (len > 0) {
        const char *p = buf, *end = buf + len;
        while (p < end) {
            const char *eol = memchr(p, '\r', (size_t)(end - p));
            if (eol == NULL)
                eol = end;
            size_t l = (size_t)(eol - p);
            /* Scope and algorithm describe rl_check's layers; a zone has neither. */
            if (l > 0 && ngx_strncasecmp((u_char *)p, (u_char *)"X-RateLimit-Scope", 17) != 0 &&
                ngx_http_rl_push_header(r, p, l) != NGX_OK)
                return NGX_ERROR;
            p = eol + 2;
        }
    }
    return ngx_http_next_header_filter(r);
}

/* ------------------------------------------------------------------------------------------ */
/* $rl_req_status                                                                               */

static ngx_int_t ngx_http_rl_status_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
                                             uintptr_t data)
{
    (void)data;
    ngx_http_rl_ctx_t *ctx = ngx_http_rl_get_ctx(r, 0);
    if (ctx == NULL || ctx->status == 0) {
        v->not_found = 1;
        return NGX_OK;
    }
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->len = (unsigned)ngx_http_rl_status_names[ctx->status - 1].len;
    v->data = ngx_http_rl_status_names[ctx->status - 1].data;
    return NGX_OK;
}

static ngx_int_t ngx_http_rl_add_variables(ngx_conf_t *cf)
{
    static ngx_str_t name = ngx_string("rl_req_status");
    ngx_http_variable_t *var = ngx_http_add_variable(cf, &name, 0);
    if (var == NULL)
        return NGX_ERROR;
    var->get_handler = ngx_http_rl_status_variable;
    return NGX_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Configuration                                                                                */

static void *ngx_http_rl_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_rl_main_conf_t *mcf = ngx_pcalloc(cf->pool, sizeof(*mcf));
    if (mcf == NULL)
        return NULL;
    if (ngx_array_init(&mcf->zones, cf->pool, 4, sizeof(ngx_http_rl_zone_t *)) != NGX_OK)
        return NULL;
    mcf->sync_ms = NGX_CONF_UNSET_MSEC;
    mcf->fallback = RL_FALLBACK_DEFAULT;
    mcf->rules_user = NGX_CONF_UNSET_PTR;
    mcf->rules_tier = NGX_CONF_UNSET_PTR;
    return mcf;
}

static char *ngx_http_rl_init_main_conf(ngx_conf_t *cf, void *conf)
{
    (void)cf;
    ngx_http_rl_main_conf_t *mcf = conf;
    if (mcf->rules_user == NGX_CONF_UNSET_PTR)
        mcf->rules_user = NULL;
    if (mcf->rules_tier == NGX_CONF_UNSET_PTR)
        mcf->rules_tier = NULL;
    return NGX_CONF_OK;
}

static void *ngx_http_rl_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_rl_loc_conf_t *conf = ngx_pcalloc(cf->pool, sizeof(*conf));
    if (conf == NULL)
        return NULL;
    conf->limit_log_level = NGX_CONF_UNSET_UINT;
    conf->status_code = NGX_CONF_UNSET_UINT;
    conf->dry_run = NGX_CONF_UNSET;
    conf->headers = NGX_CONF_UNSET_UINT;
    return conf;
}

static char *ngx_http_rl_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    (void)cf;
    ngx_http_rl_loc_conf_t *prev = parent;
    ngx_http_rl_loc_conf_t *conf = child;
    if (conf->limits.elts == NULL)
        conf->limits = prev->limits;
    ngx_conf_merge_uint_value(conf->limit_log_level, prev->limit_log_level, NGX_LOG_ERR);
    conf->delay_log_level =
        conf->limit_log_level == NGX_LOG_INFO ? NGX_LOG_INFO : conf->limit_log_level + 1;
    ngx_conf_merge_uint_value(conf->status_code, prev->status_code, NGX_HTTP_SERVICE_UNAVAILABLE);
    ngx_conf_merge_value(conf->dry_run, prev->dry_run, 0);
    ngx_conf_merge_uint_value(conf->headers, prev->headers, RL_NGX_HEADERS_OFF);
    return NGX_CONF_OK;
}

/* The zone record for `name`, created (undeclared) when rl_req names it first. */
static ngx_http_rl_zone_t *ngx_http_rl_zone_get(ngx_conf_t *cf, ngx_http_rl_main_conf_t *mcf,
                                                const ngx_str_t *name)
{
    ngx_http_rl_zone_t **zs = mcf->zones.elts;
    for (ngx_uint_t i = 0; i < mcf->zones.nelts; i++) {
        if (zs[i]->name.len == name->len &&
            ngx_strncmp(zs[i]->name.data, name->data, name->len) == 0)
            return zs[i];
    }
    ngx_http_rl_zone_t *z = ngx_pcalloc(cf->pool, sizeof(*z));
    ngx_http_rl_zone_t **slot = ngx_array_push(&mcf->zones);
    if (z == NULL || slot == NULL)
        return NULL;
    z->name = *name;
    z->capacity_k = 1;
    *slot = z;
    return z;
}

/* "N r/s" etc.: requests per window, exact (limit_req keeps thousandths per second). */
static ngx_int_t ngx_http_rl_parse_rate(ngx_str_t *v, uint64_t *requests, uint64_t *window_ms)
{
    u_char *p = v->data;
    size_t len = v->len;
    uint64_t w = 1000;
    if (len > 3 && p[len - 3] == 'r' && p[len - 2] == '/') {
        switch (p[len - 1]) {
        case 's':
            w = 1000;
            break;
        case 'm':
            w = 60000;
            break;
        case 'h':
            w = 3600000;
            break;
        case 'd':
            w = 86400000;
            break;
        default:
            return NGX_ERROR;
        }
        len -= 3;
    }
    ngx_int_t n = ngx_atoi(p, len);
    if (n <= 0)
        return NGX_ERROR;
    *requests = (uint64_t)n;
    *window_ms = w;
    return NGX_OK;
}

static char *ngx_http_rl_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_rl_main_conf_t *mcf = conf;
    ngx_str_t *value = cf->args->elts;
    ngx_str_t name = ngx_null_string;
    ssize_t size = 0;
    uint64_t requests = 1, window_ms = 1000;
    rl_mode mode = RL_MODE_LOCAL;
    rl_algorithm alg = RL_TOKEN_BUCKET;
    ngx_str_t shm = ngx_null_string;
    ngx_int_t shm_mode = 0600;

    for (ngx_uint_t i = 2; i < cf->args->nelts; i++) {
        ngx_str_t *a = &value[i];
        if (ngx_strncmp(a->data, "zone=", 5) == 0) {
            name.data = a->data + 5;
            u_char *p = (u_char *)ngx_strchr(name.data, ':');
            if (p == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid zone size \"%V\"", a);
                return NGX_CONF_ERROR;
            }
            name.len = (size_t)(p - name.data);
            ngx_str_t s = {(size_t)(a->data + a->len - (p + 1)), p + 1};
            size = ngx_parse_size(&s);
            if (size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid zone size \"%V\"", a);
                return NGX_CONF_ERROR;
            }
            if (size < (ssize_t)(8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "zone \"%V\" is too small", a);
                return NGX_CONF_ERROR;
            }
            continue;
        }
        if (ngx_strncmp(a->data, "rate=", 5) == 0) {
            ngx_str_t r = {a->len - 5, a->data + 5};
            if (ngx_http_rl_parse_rate(&r, &requests, &window_ms) != NGX_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid rate \"%V\"", a);
                return NGX_CONF_ERROR;
            }
            continue;
        }
        if (ngx_strncmp(a->data, "mode=", 5) == 0) {
            if (ngx_strcmp(a->data + 5, "local") == 0) {
                mode = RL_MODE_LOCAL;
            } else if (ngx_strcmp(a->data + 5, "global") == 0) {
                mode = RL_MODE_GLOBAL;
            } else if (ngx_strcmp(a->data + 5, "strict") == 0) {
                ngx_conf_log_error(
                    NGX_LOG_EMERG, cf, 0,
                    "\"%V\": mode=strict is refused in nginx: a STRICT check waits for a Redis "
                    "round trip, which would block the worker's event loop and every client on "
                    "it; use mode=global (cluster-wide with a bounded error, decided locally)",
                    a);
                return NGX_CONF_ERROR;
            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid mode \"%V\": local or global expected", a);
                return NGX_CONF_ERROR;
            }
            continue;
        }
        if (ngx_strncmp(a->data, "algorithm=", 10) == 0) {
            if (ngx_strcmp(a->data + 10, "token_bucket") == 0) {
                alg = RL_TOKEN_BUCKET;
            } else if (ngx_strcmp(a->data + 10, "sliding_window") == 0) {
                alg = RL_SLIDING_WINDOW;
            } else if (ngx_strcmp(a->data + 10, "fixed_window") == 0) {
                alg = RL_FIXED_WINDOW;
            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid algorithm \"%V\": token_bucket (limit_req's), "
                                   "sliding_window or fixed_window expected",
                                   a);
                return NGX_CONF_ERROR;
            }
            continue;
        }
        if (ngx_strncmp(a->data, "shm=", 4) == 0) {
            shm.data = a->data + 4;
            shm.len = a->len - 4;
            ngx_flag_t ok = shm.len >= 2 && shm.len <= 201 && shm.data[0] == '/';
            for (size_t k = 1; ok && k < shm.len; k++) {
                u_char c = shm.data[k];
                ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '_' || c == '-';
            }
            if (!ok) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": \"/\" then 1 to 200 of [A-Za-z0-9._-]", a);
                return NGX_CONF_ERROR;
            }
            continue;
        }
        if (ngx_strncmp(a->data, "shm_mode=", 9) == 0) {
            shm_mode = 0;
            for (u_char *p = a->data + 9; p < a->data + a->len; p++) {
                if (*p < '0' || *p > '7' || shm_mode > 0777) {
                    shm_mode = -1;
                    break;
                }
                shm_mode = shm_mode * 8 + (*p - '0');
            }
            if (shm_mode <= 0 || shm_mode > 0777 || (shm_mode & 0600) != 0600) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": octal permission bits such as 0600 or 0660 "
                                   "expected (the owner needs read and write)",
                                   a);
                return NGX_CONF_ERROR;
            }
            continue;
        }
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", a);
        return NGX_CONF_ERROR;
    }
    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" must have \"zone\" parameter", &cmd->name);
        return NGX_CONF_ERROR;
    }
    ngx_http_rl_zone_t *z = ngx_http_rl_zone_get(cf, mcf, &name);
    if (z == NULL)
        return NGX_CONF_ERROR;
    if (z->size != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V \"%V\" is already bound to key \"%V\"",
                           &cmd->name, &name, &z->key.value);
        return NGX_CONF_ERROR;
    }
    ngx_http_compile_complex_value_t ccv;
    ngx_memzero(&ccv, sizeof(ccv));
    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = &z->key;
    if (ngx_http_compile_complex_value(&ccv) != NGX_OK)
        return NGX_CONF_ERROR;
    z->size = (size_t)size;
    z->requests = requests;
    z->window_ms = window_ms;
    z->mode = mode;
    z->algorithm = alg;
    z->shm_mode = (ngx_uint_t)shm_mode;
    z->file = cf->conf_file->file.name.data;
    z->line = cf->conf_file->line;
    if (shm.len == 0) {
        /* Default name: one per zone name on the host (instances with the same zone share). */
        ngx_snprintf((u_char *)z->shm, sizeof(z->shm) - 1, "/rl-nginx.%V%Z", &name);
    } else {
        ngx_memcpy(z->shm, shm.data, shm.len);
        z->shm[shm.len] = '\0';
    }
    return NGX_CONF_OK;
}

static char *ngx_http_rl_req_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_rl_loc_conf_t *lcf = conf;
    ngx_http_rl_main_conf_t *mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_rl_module);
    ngx_str_t *value = cf->args->elts;
    ngx_http_rl_zone_t *z = NULL;
    ngx_int_t burst = 0, delay = 0;
    ngx_flag_t nodelay = 0;

    for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
        ngx_str_t *a = &value[i];
        if (ngx_strncmp(a->data, "zone=", 5) == 0) {
            ngx_str_t s = {a->len - 5, a->data + 5};
            z = ngx_http_rl_zone_get(cf, mcf, &s);
            if (z == NULL)
                return NGX_CONF_ERROR;
            continue;
        }
        if (ngx_strncmp(a->data, "burst=", 6) == 0) {
            burst = ngx_atoi(a->data + 6, a->len - 6);
            if (burst <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid burst value \"%V\"", a);
                return NGX_CONF_ERROR;
            }
            continue;
        }
        if (ngx_strncmp(a->data, "delay=", 6) == 0) {
            delay = ngx_atoi(a->data + 6, a->len - 6);
            if (delay <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid delay value \"%V\"", a);
                return NGX_CONF_ERROR;
            }
            continue;
        }
        if (ngx_strcmp(a->data, "nodelay") == 0) {
            nodelay = 1;
            continue;
        }
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", a);
        return NGX_CONF_ERROR;
    }
    if (z == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" must have \"zone\" parameter", &cmd->name);
        return NGX_CONF_ERROR;
    }
    if (burst > (1 << 24)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "burst=%i is above rl_req's 16777216", burst);
        return NGX_CONF_ERROR;
    }
    if (lcf->limits.elts == NULL &&
        ngx_array_init(&lcf->limits, cf->pool, 1, sizeof(ngx_http_rl_limit_t)) != NGX_OK)
        return NGX_CONF_ERROR;
    ngx_http_rl_limit_t *ls = lcf->limits.elts;
    for (ngx_uint_t i = 0; i < lcf->limits.nelts; i++) {
        if (ls[i].zone == z)
            return "is duplicate";
    }
    if (lcf->limits.nelts >= 64)
        return "takes at most 64 zones per location";
    ngx_http_rl_limit_t *l = ngx_array_push(&lcf->limits);
    if (l == NULL)
        return NGX_CONF_ERROR;
    l->zone = z;
    l->burst = (uint64_t)burst;
    l->delay = nodelay ? RL_NGX_NODELAY : (uint64_t)delay;
    if (z->capacity_k < l->burst + 1)
        z->capacity_k = l->burst + 1;
    return NGX_CONF_OK;
}

static char *ngx_http_rl_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_rl_main_conf_t *mcf = conf;
    ngx_str_t *value = cf->args->elts;
    if (mcf->redis_url != NULL)
        return "is duplicate";
    mcf->redis_url = ngx_pnalloc(cf->pool, value[1].len + 1);
    if (mcf->redis_url == NULL)
        return NGX_CONF_ERROR;
    ngx_memcpy(mcf->redis_url, value[1].data, value[1].len);
    mcf->redis_url[value[1].len] = '\0';
    for (ngx_uint_t i = 2; i < cf->args->nelts; i++) {
        ngx_str_t *a = &value[i];
        if (ngx_strncmp(a->data, "sync=", 5) == 0) {
            ngx_str_t s = {a->len - 5, a->data + 5};
            ngx_msec_t ms = (ngx_msec_t)ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t)NGX_ERROR || ms < 1 || ms > 60000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": a time from 1ms to 60s expected", a);
                return NGX_CONF_ERROR;
            }
            mcf->sync_ms = ms;
            continue;
        }
        if (ngx_strncmp(a->data, "fallback=", 9) == 0) {
            if (ngx_strcmp(a->data + 9, "local") == 0) {
                mcf->fallback = RL_FALLBACK_LOCAL;
            } else if (ngx_strcmp(a->data + 9, "open") == 0) {
                mcf->fallback = RL_FALLBACK_OPEN;
            } else if (ngx_strcmp(a->data + 9, "closed") == 0) {
                mcf->fallback = RL_FALLBACK_CLOSED;
            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": local, open or closed expected", a);
                return NGX_CONF_ERROR;
            }
            continue;
        }
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: invalid parameter \"%V\"", &cmd->name, a);
        return NGX_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

static char *ngx_http_rl_rules_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_rl_main_conf_t *mcf = conf;
    ngx_str_t *value = cf->args->elts;
    if (mcf->rules_path != NULL)
        return "is duplicate";
    ngx_str_t path = value[1];
    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK)
        return NGX_CONF_ERROR;
    mcf->rules_path = ngx_pnalloc(cf->pool, path.len + 1);
    if (mcf->rules_path == NULL)
        return NGX_CONF_ERROR;
    ngx_memcpy(mcf->rules_path, path.data, path.len);
    mcf->rules_path[path.len] = '\0';
    ngx_snprintf((u_char *)mcf->rules_shm, sizeof(mcf->rules_shm) - 1, "/rl-nginx.rules%Z");
    if (cf->args->nelts == 3) {
        ngx_str_t *a = &value[2];
        if (ngx_strncmp(a->data, "shm=", 4) != 0 || a->len < 6 || a->len > 205 ||
            a->data[4] != '/') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: invalid parameter \"%V\" (shm=/NAME)",
                               &cmd->name, a);
            return NGX_CONF_ERROR;
        }
        ngx_memcpy(mcf->rules_shm, a->data + 4, a->len - 4);
        mcf->rules_shm[a->len - 4] = '\0';
    }
    /* Parsed and validated now (nginx -t reports a bad file), opened by the workers. */
    int rc = rl_check_config_file(mcf->rules_path);
    if (rc < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "rl_rules \"%s\": %s", mcf->rules_path,
                           rl_errmsg()[0] ? rl_errmsg() : rl_strerror(rc));
        return NGX_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

/* postconfiguration: every zone named is declared; the limits are final; handler and filter. */
static ngx_int_t ngx_http_rl_init(ngx_conf_t *cf)
{
    ngx_http_rl_main_conf_t *mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_rl_module);
    ngx_http_rl_zone_t **zs = mcf->zones.elts;
    for (ngx_uint_t i = 0; i < mcf->zones.nelts; i++) {
        ngx_http_rl_zone_t *z = zs[i];
        if (z->size == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "rl_req names zone \"%V\", which no rl_req_zone declares", &z->name);
            return NGX_ERROR;
        }
        if (z->mode != RL_MODE_LOCAL && mcf->redis_url == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "rl_req_zone \"%V\" in %s:%ui has mode=global, which needs Redis: add "
                          "\"rl_redis redis://HOST:PORT;\" to the http block",
                          &z->name, z->file, z->line);
            return NGX_ERROR;
        }
        if (z->algorithm != RL_TOKEN_BUCKET && z->capacity_k > 1) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "rl_req_zone \"%V\": burst needs algorithm=token_bucket (a window "
                          "algorithm allows `rate` requests per window, without burst or delay)",
                          &z->name);
            return NGX_ERROR;
        }
        ngx_memzero(&z->lim, sizeof(z->lim));
        z->lim.requests = z->requests;
        z->lim.window_ms = z->window_ms;
        z->lim.algorithm = z->algorithm;
        z->lim.mode = z->mode;
        z->lim.burst = z->algorithm == RL_TOKEN_BUCKET ? z->capacity_k : 0;
        if (z->algorithm == RL_TOKEN_BUCKET &&
            (z->capacity_k > (UINT64_C(1) << 40) ||
             (double)z->capacity_k * (double)z->window_ms * 1e6 / (double)z->requests >
                 (double)(UINT64_C(1) << 59))) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "rl_req_zone \"%V\": burst %uL at this rate spans more than 18 years",
                          &z->name, z->capacity_k - 1);
            return NGX_ERROR;
        }
    }

    ngx_http_core_main_conf_t *cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    ngx_http_handler_pt *h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL)
        return NGX_ERROR;
    *h = ngx_http_rl_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_rl_header_filter;
    return NGX_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Processes                                                                                    */

static void ngx_http_rl_log(rl_log_level level, const char *msg, void *arg)
{
    ngx_log_t *log = arg;
    ngx_uint_t l = level == RL_LOG_ERROR  ? NGX_LOG_ERR
                   : level == RL_LOG_WARN ? NGX_LOG_WARN
                   : level == RL_LOG_INFO ? NGX_LOG_INFO
                                          : NGX_LOG_DEBUG;
    ngx_log_error(l, log, 0, "rl: %s", msg);
}

static ngx_int_t ngx_http_rl_init_process(ngx_cycle_t *cycle)
{
    /* Workers (and nginx without a master) only: the cache manager and loader open nothing. */
    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE)
        return NGX_OK;
    ngx_http_conf_ctx_t *hctx =
        (ngx_http_conf_ctx_t *)ngx_get_conf(cycle->conf_ctx, ngx_http_module);
    if (hctx == NULL)
        return NGX_OK;
    ngx_http_rl_main_conf_t *mcf = hctx->main_conf[ngx_http_rl_module.ctx_index];
    if (mcf == NULL || (mcf->zones.nelts == 0 && mcf->rules_path == NULL))
        return NGX_OK;
    ngx_http_rl_worker_conf = mcf;
    rl_set_log(ngx_http_rl_log, cycle->log, RL_LOG_INFO);

    /* rl_open starts GLOBAL sync threads, which inherit this thread's signal mask: with every
     * signal blocked while they start, nginx's signals (QUIT, TERM, HUP, USR1, WINCH, ...)
     * always reach the worker's own thread and its event loop, never a sync thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    ngx_int_t rc = ngx_http_rl_open_all(cycle, mcf);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static ngx_int_t ngx_http_rl_open_all(ngx_cycle_t *cycle, ngx_http_rl_main_conf_t *mcf)
{

    ngx_http_rl_zone_t **zs = mcf->zones.elts;
    for (ngx_uint_t i = 0; i < mcf->zones.nelts; i++) {
        ngx_http_rl_zone_t *z = zs[i];
        rl_options o;
        rl_options_init(&o);
        o.shm_name = z->shm;
        o.capacity = z->size / (1024 * 1024 / RL_NGX_KEYS_PER_MB);
        if (o.capacity < 16)
            o.capacity = 16;
        o.mode = (mode_t)z->shm_mode;
        o.flags = RL_OPEN_ALLOW_FOREIGN;
        if (z->mode != RL_MODE_LOCAL) {
            o.redis_url = mcf->redis_url;
            o.fallback = mcf->fallback;
            if (mcf->sync_ms != NGX_CONF_UNSET_MSEC)
                o.sync_interval_ms = mcf->sync_ms;
        }
        int rc = rl_open(&z->rl, &o);
        if (rc < 0) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "rl_req_zone \"%V\": cannot open segment %s: %s (%s)", &z->name, z->shm,
                          rl_strerror(rc), rl_errmsg());
            z->rl = NULL;
            return NGX_ERROR;
        }
    }
    if (mcf->rules_path != NULL) {
        /* Without Redis: a rule file's global and strict layers count on this host (a STRICT
         * check would wait for Redis on the event loop; cluster-wide limits: mode=global). */
        rl_options o;
        rl_options_init(&o);
        o.shm_name = mcf->rules_shm;
        o.config_path = mcf->rules_path;
        o.flags = RL_OPEN_ALLOW_FOREIGN;
        int rc = rl_open(&mcf->rules_rl, &o);
        if (rc == 0)
            rc = rl_load_config(mcf->rules_rl, mcf->rules_path); /* a reload's file wins */
        if (rc < 0) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "rl_rules \"%s\" (segment %s): %s (%s)",
                          mcf->rules_path, mcf->rules_shm, rl_strerror(rc), rl_errmsg());
            rl_close(&mcf->rules_rl);
            return NGX_ERROR;
        }
    }
    return NGX_OK;
}

static void ngx_http_rl_exit_process(ngx_cycle_t *cycle)
{
    (void)cycle;
    ngx_http_rl_main_conf_t *mcf = ngx_http_rl_worker_conf;
    if (mcf == NULL)
        return;
    ngx_http_rl_zone_t **zs = mcf->zones.elts;
    for (ngx_uint_t i = 0; i < mcf->zones.nelts; i++)
        rl_close(&zs[i]->rl);
    rl_close(&mcf->rules_rl);
    rl_set_log(NULL, NULL, RL_LOG_ERROR);
    ngx_http_rl_worker_conf = NULL;
}
