/*
 * Live keys: the walk over the key table that keys, get, reset, stats and top share (filters by
 * prefix, rule or exact key; sorting), and the commands keys, get KEY and reset.
 */
#include <stdlib.h>
#include <string.h>

#include "rlctl.h"

/* Does a shown key belong to one of a rule's layers? A shown key is its first 24 bytes, or for
 * a GLOBAL key the 8 hex digits of its layer's tag alone (the rest of the slot holds the key's
 * cluster id). */
static bool key_in_rule(const char *key, char (*prefixes)[10], int n)
{
    size_t want = strlen(key) == 8 ? 8 : 9; /* "<tag>" or "<tag>:" */
    for (int k = 0; k < n; k++)
        if (strncmp(key, prefixes[k], want) == 0)
            return true;
    return false;
}

/* Does a key start with p, as far as its shown part (its first 24 bytes; 8 for GLOBAL keys)
 * tells? A truncated key matches a longer p on the bytes shown. */
static bool key_has_prefix(const rl_key_view *kv, const char *p)
{
    size_t n = strlen(p), k = strlen(kv->key);
    if (k >= n)
        return strncmp(kv->key, p, n) == 0;
    return kv->keylen > k && strncmp(kv->key, p, k) == 0;
}

int collect_key(const rl_key_view *kv, void *arg)
{
    struct key_list *kl = arg;
    if (kl->prefix && !key_has_prefix(kv, kl->prefix))
        return 0;
    if (kl->exact && (kv->keylen != strlen(kl->exact) || !key_has_prefix(kv, kl->exact)))
        return 0;
    if (kl->rule && !key_in_rule(kv->key, kl->rule, kl->nrule))
        return 0;
    if (kl->n == kl->cap) {
        size_t cap = kl->cap ? kl->cap * 2 : 64;
        struct key_row *r = realloc(kl->rows, cap * sizeof *r);
        if (!r) {
            kl->oom = true;
            return 1;
        }
        kl->rows = r;
        kl->cap = cap;
    }
    char *k = strdup(kv->key);
    if (!k) {
        kl->oom = true;
        return 1;
    }
    struct key_row *row = &kl->rows[kl->n++];
    row->key = k;
    row->keylen = kv->keylen;
    row->limit = kv->limit;
    row->state = kv->state;
    row->slot = kv->slot;
    row->denied = 0;
    row->denied_known = kv->limit.mode != RL_MODE_GLOBAL;
    row->reclaimable = kv->reclaimable;
    return 0;
}

static int by_key(const void *a, const void *b)
{
    const struct key_row *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c != 0)
        return c;
    return (x->slot > y->slot) - (x->slot < y->slot);
}

int by_remaining(const void *a, const void *b)
{
    const struct key_row *x = a, *y = b;
    if (x->state.remaining != y->state.remaining)
        return x->state.remaining < y->state.remaining ? -1 : 1;
    return by_key(a, b);
}

static int by_denied(const void *a, const void *b)
{
    const struct key_row *x = a, *y = b;
    if (x->denied != y->denied)
        return x->denied > y->denied ? -1 : 1;
    return by_key(a, b);
}

void free_keys(struct key_list *kl)
{
    for (size_t i = 0; i < kl->n; i++)
        free(kl->rows[i].key);
    free(kl->rows);
    free(kl->rule);
}

/* --rule R: the key prefixes of R's layers into kl. 0, or an exit code after a message. */
int rule_prefixes(rl_t *rl, const char *rule, struct key_list *kl)
{
    kl->rule = calloc(RL_MAX_LAYERS, sizeof *kl->rule);
    if (!kl->rule) {
        fputs("rlctl: out of memory\n", stderr);
        return EXIT_FAIL;
    }
    int n = rl_rule_key_prefixes(rl, rule, kl->rule, RL_MAX_LAYERS);
    if (n < 0) {
        fprintf(stderr, "rlctl: --rule: %s\n", rl_errmsg());
        return EXIT_FAIL;
    }
    kl->nrule = n;
    return EXIT_OK;
}

/* The live keys that kl's filters select, with their recent denials. 0 or an exit code. */
static int list_keys(rl_t *rl, struct key_list *kl)
{
    int rc = rl_foreach_key(rl, rl_clock_ns(rl), collect_key, kl);
    if (kl->oom || rc < 0) {
        if (kl->oom)
            fputs("rlctl: out of memory listing keys\n", stderr);
        else
            fail_rl("rl_foreach_key", rc);
        return EXIT_FAIL;
    }
    struct denials d;
    if (read_denials(rl, &d) == 0) {
        for (size_t i = 0; i < kl->n; i++)
            if (kl->rows[i].denied_known)
                kl->rows[i].denied = denials_of(&d, kl->rows[i].key);
        free(d.v);
    }
    return EXIT_OK;
}

/* keys, and get KEY (exact): one table of the selected keys. */
int cmd_keys(rl_t *rl, const struct opts *o)
{
    bool get = o->npos == 1;
    struct key_list kl = {.prefix = o->prefix, .exact = get ? o->pos[0] : NULL};
    int rc = o->rule ? rule_prefixes(rl, o->rule, &kl) : EXIT_OK;
    if (rc == EXIT_OK)
        rc = list_keys(rl, &kl);
    if (rc != EXIT_OK) {
        free_keys(&kl);
        return rc;
    }
    if (get && kl.n == 0 && !o->json) {
        fprintf(stderr, "rlctl: no live key \"%s\" in %s (rlctl keys lists them)\n", o->pos[0],
                o->shm);
        free_keys(&kl);
        return EXIT_FAIL;
    }
    if (kl.n > 1)
        qsort(kl.rows, kl.n, sizeof kl.rows[0],
              !o->sort                            ? by_key
              : strcmp(o->sort, "remaining") == 0 ? by_remaining
              : strcmp(o->sort, "denied") == 0    ? by_denied
                                                  : by_key);
    size_t shown = kl.n;
    if (o->has_limit && o->limit < shown)
        shown = (size_t)o->limit;
    int ret = EXIT_OK;
    if (o->json) {
        json_t *doc = json_object();
        json_t *arr = json_array();
        for (size_t i = 0; i < shown; i++) {
            const struct key_row *r = &kl.rows[i];
            json_t *k = json_object();
            json_object_set_new(k, "key", json_string(r->key));
            set_u64(k, "key_length", r->keylen);
            set_u64(k, "slot", r->slot);
            json_object_set_new(k, "algorithm", json_string(alg_name(r->limit.algorithm)));
            json_object_set_new(k, "scope", json_string(scope_name(r->limit.scope)));
            set_u64(k, "requests", r->limit.requests);
            set_u64(k, "window_ms", r->limit.window_ms);
            set_u64(k, "burst", r->limit.burst);
            set_u64(k, "limit", r->state.limit);
            set_u64(k, "remaining", r->state.remaining);
            set_u64(k, "reset_after_ms", r->state.reset_after_ms);
            if (r->denied_known)
                set_u64(k, "recent_denials", r->denied);
            else
                json_object_set_new(k, "recent_denials", json_null());
            json_object_set_new(k, "reclaimable", json_boolean(r->reclaimable));
            json_array_append_new(arr, k);
        }
        json_object_set_new(doc, "segment", json_string(o->shm));
        set_u64(doc, "total", kl.n);
        set_u64(doc, "shown", shown);
        json_object_set_new(doc, "keys", arr);
        ret = emit_json(doc);
    } else {
        fprintf(g_out, "%-26s %7s %-15s %-20s %10s %12s %8s\n", "KEY", "KEYLEN", "ALGORITHM",
                "LIMIT", "REMAINING", "RESET-AFTER", "DENIED*");
        for (size_t i = 0; i < shown; i++) {
            const struct key_row *r = &kl.rows[i];
            char lim[48], win[32];
            fmt_window(r->limit.window_ms, win, sizeof win);
            snprintf(lim, sizeof lim, "%" PRIu64 "/%s", r->limit.requests, win);
            char den[24] = "-";
            if (r->denied_known)
                snprintf(den, sizeof den, "%" PRIu64, r->denied);
            fprintf(g_out, "%-26s %7zu %-15s %-20s %10" PRIu64 " %10" PRIu64 "ms %8s\n", r->key,
                    r->keylen, alg_name(r->limit.algorithm), lim, r->state.remaining,
                    r->state.reset_after_ms, den);
        }
        fprintf(g_out, "%zu of %zu keys (* recent denials: the audit ring's last %u records)\n",
                shown, kl.n, AUDIT_RING);
    }
    if (get && kl.n == 0 && ret == EXIT_OK)
        ret = EXIT_FAIL; /* --json: the empty document, and the exit code says "none" */
    free_keys(&kl);
    return ret;
}

/* ---------------------------------------------------------------------------------------- */

struct reset_ctx {
    const char *key;
    size_t keylen;
    rl_limit *limits;
    uint64_t *slots;
    size_t n, cap;
    bool all, oom;
    const struct key_list *rule; /* --rule: its key prefixes */
};

/* KEY: every limit under which a live slot holds KEY (the slot shows a prefix of it and its
 * length); --all: every live slot. */
static int collect_reset(const rl_key_view *kv, void *arg)
{
    struct reset_ctx *c = arg;
    if (c->rule) {
        if (!key_in_rule(kv->key, c->rule->rule, c->rule->nrule))
            return 0;
    } else if (!c->all &&
               (kv->keylen != c->keylen || strncmp(c->key, kv->key, strlen(kv->key)) != 0)) {
        return 0;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        rl_limit *l = realloc(c->limits, cap * sizeof *l);
        if (l)
            c->limits = l;
        uint64_t *sl = realloc(c->slots, cap * sizeof *sl);
        if (sl)
            c->slots = sl;
        if (!l || !sl) {
            c->oom = true;
            return 1;
        }
        c->cap = cap;
    }
    c->limits[c->n] = kv->limit;
    c->slots[c->n++] = kv->slot;
    return 0;
}

int cmd_reset(rl_t *rl, const struct opts *o)
{
    if ((int)o->all + (o->npos == 1) + (o->rule != NULL) != 1 || o->npos > 1)
        return usage_error("%s wants one KEY, --rule RULE or --all", "reset");
    if (o->all && !o->yes) {
        fprintf(stderr,
                "rlctl: reset --all forgets every counter of %s (with REDIS_URL, also "
                "the cluster-wide state of its GLOBAL keys); add --yes to do it\n",
                o->shm);
        return EXIT_USAGE;
    }
    struct reset_ctx c = {.all = o->all, .key = o->npos ? o->pos[0] : NULL};
    c.keylen = c.key ? strlen(c.key) : 0;
    struct key_list rule = {0};
    if (o->rule) {
        int e = rule_prefixes(rl, o->rule, &rule);
        if (e != EXIT_OK) {
            free_keys(&rule);
            return e;
        }
        c.rule = &rule;
    }
    int rc = rl_foreach_key(rl, 0, collect_reset, &c);
    if (c.oom || rc < 0) {
        free(c.limits);
        free(c.slots);
        free_keys(&rule);
        fprintf(stderr, "rlctl: reset: %s\n", c.oom ? "out of memory" : rl_errmsg());
        return EXIT_FAIL;
    }
    size_t done = 0, failed = 0;
    for (size_t i = 0; i < c.n; i++) {
        rc = c.key ? rl_reset(rl, c.key, c.keylen, &c.limits[i]) : rl_reset_slot(rl, c.slots[i]);
        if (rc < 0) {
            failed++;
            fprintf(stderr, "rlctl: reset: %s\n", rl_errmsg());
        } else {
            done++;
        }
    }
    free(c.limits);
    free(c.slots);
    free_keys(&rule);
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        if (c.key)
            json_object_set_new(doc, "key", json_string(c.key));
        if (o->rule)
            json_object_set_new(doc, "rule", json_string(o->rule));
        set_u64(doc, "reset", done);
        set_u64(doc, "failed", failed);
        if (emit_json(doc) != 0)
            return EXIT_FAIL;
    } else if (c.key && done + failed == 0) {
        fprintf(g_out, "no counter of \"%s\" in %s (rlctl keys lists them)\n", c.key, o->shm);
    } else {
        const char *what = c.key ? c.key : o->rule;
        fprintf(g_out, "reset %zu counter%s%s%s%s\n", done, done == 1 ? "" : "s",
                !what   ? ""
                : c.key ? " of \""
                        : " of rule \"",
                what ? what : "", what ? "\"" : "");
    }
    if (failed)
        return EXIT_FAIL;
    return c.key && done == 0 ? EXIT_FAIL : EXIT_OK;
}
