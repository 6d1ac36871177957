/*
 * Rules: endpoint patterns, layered limits, tiers, bypass, the request check, the audit ring and
 * the counters.
 *
 * Sections: the compiled rule set (rt_build), publication and refresh (RCU), the API that edits
 * the rule set, counters and audit, and the check. One file of ~1,400 lines on purpose: the
 * check inlines the matcher, the key builder, the endpoint counter and its stripe choice from
 * the sections above, and a split would put calls (without LTO) on the path rl-bench row (f)
 * measures. The rule file itself (parse, check, emit) is lib/config_*.c, which never calls
 * back here.
 *
 * Theory of operation (docs/design.md "Rules"):
 *  - The shared truth is the canonical YAML in the segment (cfgstore.c). Each process compiles
 *    it into a private, immutable struct rl_rules_rt and publishes that with RCU
 *    (liburcu-bp: readers need no registration, read-side sections never block). A check runs
 *    inside one read-side section and sees one rule set from start to end. The first check that
 *    sees a new generation in the segment rebuilds (under a process mutex, outside the read-side
 *    section), swaps the pointer with rcu_assign_pointer, waits for a grace period and frees the
 *    old copy. Rebuild failures keep the old rules and are remembered per generation.
 *  - Layers are taken one by one with rl_acquire's machinery (one CAS each) at one clock read;
 *    when a non-shadow layer denies, what earlier layers took is refunded. Between the take and
 *    the refund a concurrent request may see those units missing; a process killed there leaks
 *    at most one cost per layer (design.md).
 *  - Counter keys are "<tag>:<scope letter>:<value>", the tag being 8 hex digits of a hash of
 *    (section, pattern, layer name or position): stable across reloads as long as those do not
 *    change, and unique per layer, so two rules never share a counter.
 *  - The audit ring is a ring of seqlocked records in the segment: a writer takes a sequence
 *    number with fetch_add, marks the record odd, fills it, marks it even (release). Readers
 *    copy and re-check the sequence. Writers are sampled per thread under load and count what
 *    they drop. A writer killed half-way leaves an odd record that readers skip.
 *  - Counters are striped: each thread adds (relaxed) to one of RL_STATS_STRIPES cache lines;
 *    readers sum the stripes. A check's decision is counted once, per endpoint: each rule (and
 *    "(default)") has a record in the segment's endpoint directory, claimed by CAS when a
 *    process compiles the rule set (never on the hot path), and a counter pair in each of
 *    RL_EP_STRIPES rows; the thread adds to its row's pair. One relaxed fetch_add per check on
 *    a line the thread mostly owns (docs/design.md section 9, "Counters").
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Without _LGPL_SOURCE the read-side calls go through liburcu-bp's functions (a call each
 * instead of inline code): its inline version touches a TLS reader record with an alignment
 * that this libc does not give it (UBSan reports it), and the call costs ~2 ns. */
#include <urcu-bp.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "lib/cfgstore.h"
#include "lib/internal.h"
#include "lib/ip.h"
#include "lib/pattern.h"
#include "lib/rules.h"

#define PATH_BUCKETS    1024
#define LONG_VALUE      200 /* longer user/descriptor values are keyed by their hash */
#define AUDIT_BURST     256 /* audit records per thread per AUDIT_PERIOD_NS */
#define AUDIT_PERIOD_NS 100000000ULL

/* ---- the compiled rule set ------------------------------------------------------------------- */

struct rt_layer {
    char label[RL_NAME_MAX];    /* rule_label cut to fit a decision (copied with memcpy) */
    _Atomic uint32_t lid_plus1; /* the limit's id in the segment, learnt at first use */
    rl_limit lim;               /* as configured (reported in decisions) */
    rl_limit acq;       /* as counted: GLOBAL runs LOCAL until this build has the sync thread */
    struct rl_params p; /* validated parameters (fast path needs only a few) */
    char tag[9];
    const char *rule_label;
    char name[RL_NAME_MAX];
    uint32_t warn;
};

struct rt_rule {
    const char *pattern;
    const char *method;
    size_t mlen; /* 0 = any method */
    const char *glob;
    size_t glen;
    unsigned literal, wildcards, order;
    unsigned ep; /* endpoint counter record */
    char tag[9];
    struct rt_layer *layers;
    size_t n;
};

struct rt_tier {
    const char *name;
    char label[RL_NAME_MAX];
    struct rt_layer *layers;
    size_t n;
};

struct rl_rules_rt {
    uint64_t gen;
    struct rl_ruleset *rs;
    struct rt_rule *rules; /* in precedence order */
    size_t nrules;
    struct rt_layer *defaults, *globals;
    size_t ndefaults, nglobals;
    struct rt_tier *tiers;
    size_t ntiers;
    const struct rt_tier *default_tier;
    struct rl_cidr *bypass;
    size_t nbypass;
    unsigned ipv6_prefix;
    enum rl_audit_mode audit;
    unsigned ep_default; /* endpoint record of requests no rule matches */
};

static void rt_free(struct rl_rules_rt *rt)
{
    if (!rt)
        return;
    for (size_t i = 0; i < rt->nrules; i++)
        free(rt->rules[i].layers);
    for (size_t i = 0; i < rt->ntiers; i++)
        free(rt->tiers[i].layers);
    free(rt->rules);
    free(rt->tiers);
    free(rt->defaults);
    free(rt->globals);
    free(rt->bypass);
    rl__ruleset_free(rt->rs);
    free(rt);
}

static void make_tag(char out[9], const char *section, const char *pattern, const char *layer)
{
    char buf[3 * RL_KEY_MAX];
    int n = snprintf(buf, sizeof buf, "%s%c%s%c%s", section, 0, pattern ? pattern : "", 0, layer);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof buf)
        n = (int)sizeof buf - 1;
    uint32_t h = (uint32_t)XXH3_64bits(buf, (size_t)n);
    snprintf(out, 9, "%08x", h);
}

static int compile_layers(struct rt_layer **out, const struct rl_rule_layer *src, size_t n,
                          const char *section, const char *pattern, const char *label,
                          uint32_t warn_default)
{
    *out = NULL;
    if (n == 0)
        return 0;
    struct rt_layer *ls = calloc(n, sizeof *ls);
    if (!ls)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct rt_layer *l = &ls[i];
        l->lim = src[i].lim;
        l->lim.name = src[i].name;
        l->lim.descriptor = src[i].descriptor;
        l->acq = l->lim;
        int r = rl__algos[l->lim.algorithm]->params(&l->lim, &l->p);
        if (r < 0) {
            free(ls);
            return r;
        }
        /* The cluster identity of the layer's GLOBAL keys, as rl_acquire computes it: without
         * it a rule's first check (by key) and its later ones (by the cached limit id) would
         * count one key in two slots and two Redis buckets. */
        l->p.gsig = rl__limit_gsig(&l->lim);
        if (src[i].name)
            snprintf(l->name, sizeof l->name, "%s", src[i].name);
        else
            snprintf(l->name, sizeof l->name, "%zu", i);
        make_tag(l->tag, section, pattern, l->name);
        l->rule_label = label;
        snprintf(l->label, sizeof l->label, "%s", label);
        l->warn = l->lim.warn_permille ? l->lim.warn_permille : warn_default;
    }
    *out = ls;
    return 0;
}

static int rule_cmp(const void *a, const void *b)
{
    const struct rt_rule *x = a, *y = b;
    if (x->literal != y->literal)
        return x->literal > y->literal ? -1 : 1;
    if ((x->mlen != 0) != (y->mlen != 0))
        return x->mlen ? -1 : 1;
    if (x->wildcards != y->wildcards)
        return x->wildcards < y->wildcards ? -1 : 1;
    return x->order < y->order ? -1 : (x->order > y->order);
}

static unsigned ep_claim(struct rl *rl, const char *name);

/* One rule: its method and glob apart, how specific it is (for the precedence order), its tag
 * and its layers. */
static int compile_rule(struct rt_rule *ru, const struct rl_rule *src, size_t order, uint32_t warn)
{
    ru->pattern = src->pattern;
    rl__pattern_split(src->pattern, &ru->method, &ru->mlen, &ru->glob);
    if (ru->mlen == 1 && ru->method[0] == '*')
        ru->mlen = 0;
    ru->glen = strlen(ru->glob);
    for (size_t c = 0; c < ru->glen; c++) {
        if (ru->glob[c] == '*' || ru->glob[c] == '?')
            ru->wildcards++;
        else
            ru->literal++;
    }
    ru->order = (unsigned)order;
    make_tag(ru->tag, "rule", src->pattern, "");
    ru->n = src->nlayers;
    return compile_layers(&ru->layers, src->layers, src->nlayers, "rule", src->pattern,
                          src->pattern, warn);
}

/* The rules (in precedence order), the defaults, the globals and the tiers. */
static int compile_all(struct rl_rules_rt *rt, const struct rl_ruleset *rs)
{
    uint32_t warn = rs->warn_permille;
    for (size_t i = 0; i < rs->nrules; i++) {
        int r = compile_rule(&rt->rules[i], &rs->rules[i], i, warn);
        if (r < 0)
            return r;
        rt->nrules = i + 1;
    }
    qsort(rt->rules, rt->nrules, sizeof *rt->rules, rule_cmp);
    int r = compile_layers(&rt->defaults, rs->defaults, rs->ndefaults, "default", NULL, "default",
                           warn);
    if (r < 0)
        return r;
    rt->ndefaults = rs->ndefaults;
    r = compile_layers(&rt->globals, rs->globals, rs->nglobals, "global", NULL, "global", warn);
    if (r < 0)
        return r;
    rt->nglobals = rs->nglobals;
    for (size_t i = 0; i < rs->ntiers; i++) {
        struct rt_tier *t = &rt->tiers[i];
        t->name = rs->tiers[i].name;
        snprintf(t->label, sizeof t->label, "tier:%s", t->name);
        t->n = rs->tiers[i].nlayers;
        r = compile_layers(&t->layers, rs->tiers[i].layers, t->n, "tier", t->name, t->label, warn);
        if (r < 0)
            return r;
        rt->ntiers = i + 1;
        if (rs->default_tier && strcmp(rs->default_tier, t->name) == 0)
            rt->default_tier = t;
    }
    return 0;
}

static int rt_build(struct rl *rl, struct rl_ruleset *rs, uint64_t gen, struct rl_rules_rt **out)
{
    struct rl_rules_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->rs = rs;
    rt->gen = gen;
    rt->ipv6_prefix = rs->ipv6_prefix ? rs->ipv6_prefix : 128;
    rt->audit = rs->audit;
    int r = -ENOMEM;
    rt->rules = calloc(rs->nrules ? rs->nrules : 1, sizeof *rt->rules);
    rt->tiers = calloc(rs->ntiers ? rs->ntiers : 1, sizeof *rt->tiers);
    rt->bypass = calloc(rs->nbypass_ips ? rs->nbypass_ips : 1, sizeof *rt->bypass);
    if (!rt->rules || !rt->tiers || !rt->bypass)
        goto fail;
    r = compile_all(rt, rs);
    for (size_t i = 0; i < rs->nbypass_ips && r == 0; i++) {
        r = rl__cidr_parse(rs->bypass_ips[i], &rt->bypass[i]);
        if (r == 0)
            rt->nbypass = i + 1;
    }
    if (r < 0)
        goto fail;
    /* Endpoint records last: a rule set that does not compile claims none. */
    for (size_t i = 0; i < rt->nrules; i++)
        rt->rules[i].ep = ep_claim(rl, rt->rules[i].pattern);
    rt->ep_default = ep_claim(rl, "(default)");
    *out = rt;
    return 0;
fail:
    rt->rs = NULL; /* the caller still owns rs */
    rt_free(rt);
    return r;
}

/* ---- publication and refresh ----------------------------------------------------------------- */

/* liburcu-bp asks for these around fork() when the child goes on without exec(); registered
 * in the library's one fork registry (lib/fork.c). */
static struct rl_fork_hook urcu_fork_hook = {
    .prepare = urcu_bp_before_fork,
    .parent = urcu_bp_after_fork_parent,
    .child = urcu_bp_after_fork_child,
};

/* Compiles the segment's current rule set into this process's copy. Blocks only the caller
 * (a grace period), never a reader. */
static int rules_refresh(struct rl *rl, bool wait)
{
    pthread_mutex_t *mu = rl->rules_lock;
    if (wait)
        pthread_mutex_lock(mu);
    else if (pthread_mutex_trylock(mu) != 0)
        return 0; /* another thread is rebuilding; keep using the old copy meanwhile */
    int r = 0;
    uint64_t gen = rl__cfg_generation(rl);
    /* relaxed: only changed under mu, which we hold. */
    struct rl_rules_rt *cur = atomic_load_explicit(&rl->rules, memory_order_relaxed);
    if ((cur && cur->gen == gen) || gen == 0 ||
        atomic_load_explicit(&rl->rules_failed_gen, memory_order_relaxed) == gen)
        goto out;
    char *text = NULL;
    size_t len = 0;
    r = rl__cfg_read(rl, &text, &len, &gen);
    if (r < 0)
        goto out;
    struct rl_ruleset *rs = NULL;
    r = rl__ruleset_parse(text, len, "segment", &rs);
    free(text);
    struct rl_rules_rt *rt = NULL;
    if (r == 0) {
        r = rt_build(rl, rs, gen, &rt);
        if (r < 0)
            rl__ruleset_free(rs);
    }
    if (r < 0) {
        atomic_store_explicit(&rl->rules_failed_gen, gen, memory_order_relaxed);
        rl__log(RL_LOG_ERROR,
                "segment %s: rule set generation %llu does not compile here (%s); the rules "
                "of generation %llu stay in force",
                rl->name, (unsigned long long)gen, rl_errmsg(),
                (unsigned long long)(cur ? cur->gen : 0));
        goto out;
    }
    rl__log(RL_LOG_INFO, "segment %s: rule set generation %llu in force (%zu rules)", rl->name,
            (unsigned long long)gen, rt->nrules);
    /* release: the compiled copy is complete before readers can reach it; pairs with the
     * acquire load in rl_check_at() (RCU's rcu_assign_pointer/rcu_dereference, spelled in C11
     * so that ThreadSanitizer sees the pairing too). */
    atomic_store_explicit(&rl->rules, rt, memory_order_release);
    pthread_mutex_unlock(mu);
    if (cur) {
        urcu_bp_synchronize_rcu(); /* no reader can still hold cur */
        RL_TSAN_ACQUIRE(cur);      /* pairs with RL_TSAN_RELEASE in rl_check_at() */
        rt_free(cur);
    }
    return 0;
out:
    pthread_mutex_unlock(mu);
    return r;
}

/* Publishes rs (validated) as the segment's rule set; caller holds the writer lock. */
static int publish_locked(struct rl *rl, const struct rl_ruleset *rs)
{
    char *text = NULL;
    size_t len = 0;
    int r = rl__ruleset_emit(rs, &text, &len);
    if (r < 0)
        return r;
    uint64_t gen = 0;
    r = rl__cfg_publish_locked(rl, text, len, &gen);
    free(text);
    if (r == 0)
        rl__log(RL_LOG_INFO, "segment %s: published rule set generation %llu (%zu bytes)", rl->name,
                (unsigned long long)gen, len);
    return r;
}

/* With the writer lock held: publishes rs unless r already says something failed, releases the
 * lock, and compiles the new rules for this process. Returns the first error. */
static int publish_unlock_refresh(struct rl *rl, const struct rl_ruleset *rs, int r)
{
    if (r == 0)
        r = publish_locked(rl, rs);
    rl__cfg_unlock(rl);
    if (r == 0)
        r = rules_refresh(rl, true);
    return r;
}

int rl__rules_open(struct rl *rl, const rl_options *o)
{
    rl__fork_register(&urcu_fork_hook);
    pthread_mutex_t *mu = malloc(sizeof *mu);
    if (!mu)
        return rl__err(-ENOMEM, "out of memory");
    pthread_mutex_init(mu, NULL);
    rl->rules_lock = mu;
    rl->enabled = o->enabled;
    rl->count = !(o->flags & RL_OPEN_NO_STATS);
    if (rl__cfg_generation(rl) == 0) {
        /* No rule set yet: publish the configured file, or the environment's preset. Two
         * processes may race here; the writer lock and a re-check make one of them win. */
        struct rl_ruleset *rs = NULL;
        int r;
        if (o->config_path) {
            r = rl__ruleset_load_file(o->config_path, &rs);
        } else {
            const char *env = o->environment ? o->environment : "production";
            const char *text = rl__preset_yaml(env);
            if (!text)
                return rl__err(-EINVAL,
                               "environment \"%.32s\" has no preset; use development, staging "
                               "or production, or set a configuration file (RL_CONFIG)",
                               env);
            char origin[64];
            snprintf(origin, sizeof origin, "preset %s", env);
            r = rl__ruleset_parse(text, strlen(text), origin, &rs);
        }
        if (r < 0)
            return r;
        r = rl__cfg_lock(rl);
        if (r == 0) {
            if (rl__cfg_generation(rl) == 0)
                r = publish_locked(rl, rs);
            rl__cfg_unlock(rl);
        }
        rl__ruleset_free(rs);
        if (r < 0)
            return r;
    }
    int r = rules_refresh(rl, true);
    if (r < 0)
        return r;
    rl__clear_err();
    return 0;
}

void rl__rules_sync_settings(struct rl *rl, uint64_t *interval_ms, int *fallback)
{
    *interval_ms = 0;
    *fallback = RL_FALLBACK_DEFAULT;
    /* Called by rl_open before the handle is shared: no reader or refresher can race us. */
    struct rl_rules_rt *rt = atomic_load_explicit(&rl->rules, memory_order_acquire);
    if (rt && rt->rs) {
        *interval_ms = rt->rs->sync_interval_ms;
        *fallback = rt->rs->sync_fallback;
    }
}

void rl__rules_close(struct rl *rl)
{
    if (rl->rules_lock) {
        /* The caller guarantees no check is running on this handle any more. */
        rt_free(atomic_load_explicit(&rl->rules, memory_order_relaxed));
        atomic_store_explicit(&rl->rules, NULL, memory_order_relaxed);
        pthread_mutex_destroy(rl->rules_lock);
        free(rl->rules_lock);
        rl->rules_lock = NULL;
    }
}

RL_API int rl_load_config(rl_t *rl, const char *path)
{
    if (!rl || !path)
        return rl__err(-EINVAL, "rl_load_config: rl and path must not be NULL");
    struct rl_ruleset *rs = NULL;
    int r = rl__ruleset_load_file(path, &rs);
    if (r < 0)
        return r;
    r = rl__cfg_lock(rl);
    if (r == 0)
        r = publish_unlock_refresh(rl, rs, 0);
    rl__ruleset_free(rs);
    return r;
}

/* With the writer lock held: the published rule set, parsed, to edit (an empty one when none
 * was published yet). */
static int read_for_edit(struct rl *rl, struct rl_ruleset **rs)
{
    char *text = NULL;
    size_t len = 0;
    int r = rl__cfg_read(rl, &text, &len, NULL);
    if (r == 0) {
        r = rl__ruleset_parse(text, len, "segment", rs);
        free(text);
    } else if (r == -ENOENT) {
        *rs = rl__ruleset_new();
        r = *rs ? 0 : -ENOMEM;
    }
    return r;
}

RL_API int rl_configure_endpoint(rl_t *rl, const char *pattern, const rl_limit *limits, size_t n)
{
    if (!rl || !pattern || (!limits && n))
        return rl__err(-EINVAL, "rl_configure_endpoint: rl, pattern and limits must not be NULL");
    int r = rl__pattern_check(pattern);
    if (r < 0)
        return r;
    r = rl__cfg_lock(rl);
    if (r < 0)
        return r;
    struct rl_ruleset *rs = NULL;
    r = read_for_edit(rl, &rs);
    if (r == 0)
        r = rl__ruleset_set_rule(rs, pattern, limits, n);
    if (r == 0)
        r = rl__ruleset_validate(rs, "rl_configure_endpoint");
    if (r == 0)
        r = rl__ruleset_check_build(rs, "rl_configure_endpoint", pattern);
    r = publish_unlock_refresh(rl, rs, r);
    rl__ruleset_free(rs);
    return r;
}

static int bypass_edit(rl_t *rl, rl_bypass_kind kind, const char *value, bool add)
{
    const char *fn = add ? "rl_bypass_add" : "rl_bypass_remove";
    if (!rl || !value || !*value)
        return rl__err(-EINVAL, "%s: rl and value must not be NULL or empty", fn);
    if (kind != RL_BYPASS_IP && kind != RL_BYPASS_USER)
        return rl__err(-EINVAL, "%s: kind %d is not RL_BYPASS_IP or RL_BYPASS_USER", fn, (int)kind);
    int r = rl__cfg_lock(rl);
    if (r < 0)
        return r;
    struct rl_ruleset *rs = NULL;
    r = read_for_edit(rl, &rs);
    if (r == 0) {
        r = rl__ruleset_bypass_edit(rs, (int)kind, value, add);
        if (r == 1) { /* nothing to change */
            r = add ? 0
                    : rl__err(-ENOENT, "%s: %s \"%.64s\" is not on the bypass list", fn,
                              kind == RL_BYPASS_IP ? "address" : "user", value);
            rl__cfg_unlock(rl);
            rl__ruleset_free(rs);
            return r;
        }
    }
    if (r == 0)
        r = rl__ruleset_validate(rs, fn);
    r = publish_unlock_refresh(rl, rs, r);
    rl__ruleset_free(rs);
    return r;
}

RL_API int rl_bypass_add(rl_t *rl, rl_bypass_kind kind, const char *value)
{
    return bypass_edit(rl, kind, value, true);
}

RL_API int rl_bypass_remove(rl_t *rl, rl_bypass_kind kind, const char *value)
{
    return bypass_edit(rl, kind, value, false);
}

RL_API long rl_bypass_list(rl_t *rl, rl_bypass_kind kind, char *buf, size_t len)
{
    if (!rl || (!buf && len))
        return rl__err(-EINVAL, "rl_bypass_list: rl and buf must not be NULL");
    if (kind != RL_BYPASS_IP && kind != RL_BYPASS_USER)
        return rl__err(-EINVAL, "rl_bypass_list: kind %d is not RL_BYPASS_IP or RL_BYPASS_USER",
                       (int)kind);
    char *text = NULL;
    size_t tlen = 0;
    struct rl_ruleset *rs = NULL;
    int r = rl__cfg_read(rl, &text, &tlen, NULL);
    if (r < 0)
        return r;
    r = rl__ruleset_parse(text, tlen, "segment", &rs);
    free(text);
    if (r < 0)
        return r;
    char **list = kind == RL_BYPASS_USER ? rs->bypass_users : rs->bypass_ips;
    size_t n = kind == RL_BYPASS_USER ? rs->nbypass_users : rs->nbypass_ips;
    size_t need = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(list[i]);
        if (len && need + l + 1 < len) {
            memcpy(buf + need, list[i], l);
            buf[need + l] = '\n';
            buf[need + l + 1] = '\0';
        }
        need += l + 1;
    }
    rl__ruleset_free(rs);
    return (long)need;
}

RL_API long rl_config_dump(rl_t *rl, char *buf, size_t len)
{
    if (!rl || (!buf && len))
        return rl__err(-EINVAL, "rl_config_dump: rl and buf must not be NULL");
    char *text = NULL;
    size_t n = 0;
    int r = rl__cfg_read(rl, &text, &n, NULL);
    if (r < 0)
        return r;
    if (len) {
        size_t c = n < len - 1 ? n : len - 1;
        memcpy(buf, text, c);
        buf[c] = '\0';
    }
    free(text);
    return (long)n;
}

/* ---- counters and audit ---------------------------------------------------------------------- */

static _Atomic unsigned g_stripe_next;
static RL_TLS unsigned tl_stripe_plus1;

/* This thread's stripe index, 0..RL_STATS_STRIPES-1 (its endpoint row: the same modulo
 * RL_EP_STRIPES). Chosen once per thread: a system call per check would cost more than the
 * check. Threads are spread round-robin, processes by their pid. */
static unsigned my_stripe(void)
{
    if (!tl_stripe_plus1) /* relaxed: only spreads threads over stripes */
        tl_stripe_plus1 = 1 + (atomic_fetch_add_explicit(&g_stripe_next, 1, memory_order_relaxed) +
                               (unsigned)getpid() * 7u) %
                                  RL_STATS_STRIPES;
    return tl_stripe_plus1 - 1;
}

/* relaxed: statistics; each thread mostly owns its stripe, so these stay in its cache. */
#define COUNT(st, field) atomic_fetch_add_explicit(&(st)->field, 1, memory_order_relaxed)

/* ---- endpoint counters ----------------------------------------------------------------------- */

static uint64_t ep_hash(const char *name)
{
    /* The whole name: two long patterns that differ after the stored 63 bytes stay apart. */
    uint64_t h = XXH3_64bits(name, strlen(name)) & ~RL_EP_LIVE;
    return h ? h : 2;
}

static void ep_write_name(struct rl_ep_rec *e, const char *name)
{
    uint64_t w[RL_EP_NAME / 8];
    memset(w, 0, sizeof w);
    memcpy(w, name, strnlen(name, RL_EP_NAME - 1));
    /* relaxed: every writer of this record writes the same bytes (the name is a function of the
     * id); the release store of the LIVE id publishes them. */
    for (size_t i = 0; i < RL_EP_NAME / 8; i++)
        atomic_store_explicit(&e->name[i], w[i], memory_order_relaxed);
}

/* The directory record of endpoint `name`, claimed when new: linear probing from its hash over
 * records 1..RL_EP_MAX-1. A claimer CASes EMPTY -> id (bit 0 clear), writes the name, and
 * publishes id | LIVE with release. A claimer that died before publishing leaves the id
 * without LIVE: the next process that needs the record writes the (same) name and publishes
 * it. A full directory gives record 0, "(other)". Control plane only (rule compilation). */
static unsigned ep_claim(struct rl *rl, const char *name)
{
    uint64_t h = ep_hash(name);
    unsigned start = (unsigned)(h >> 8) % (RL_EP_MAX - 1);
    for (unsigned k = 0; k < RL_EP_MAX - 1; k++) {
        unsigned i = 1 + (start + k) % (RL_EP_MAX - 1);
        struct rl_ep_rec *e = &rl->ep_dir[i];
        /* acquire: pairs with the release store of id | LIVE (the name is complete). */
        uint64_t id = atomic_load_explicit(&e->id, memory_order_acquire);
        if (id == 0) {
            /* acquire (both ways): a record another claimer made LIVE meanwhile has its name
             * visible (pairs with the release store below); the claim itself publishes
             * nothing, the LIVE store does. */
            if (!atomic_compare_exchange_strong_explicit(&e->id, &id, h, memory_order_acquire,
                                                         memory_order_acquire) &&
                (id & ~RL_EP_LIVE) != h)
                continue; /* taken by another endpoint meanwhile */
        } else if ((id & ~RL_EP_LIVE) != h) {
            continue;
        }
        if (!(id & RL_EP_LIVE)) {
            ep_write_name(e, name);
            /* release: pairs with the acquire loads of readers and claimers. */
            atomic_store_explicit(&e->id, h | RL_EP_LIVE, memory_order_release);
        }
        return i;
    }
    rl__log(RL_LOG_WARN,
            "segment %s: the endpoint directory is full (%u endpoints); \"%.64s\" is counted "
            "as (other)",
            rl->name, RL_EP_MAX - 1, name);
    return 0;
}

/* Counts a decision of endpoint ep. */
static inline void ep_count(struct rl *rl, unsigned stripe, unsigned ep, bool allowed)
{
    struct rl_ep_ctr *c = &rl->ep_ctr[(size_t)(stripe & (RL_EP_STRIPES - 1)) * RL_EP_MAX + ep];
    /* relaxed: statistics; the row is this thread's (shared only when threads outnumber the
     * stripes). */
    atomic_fetch_add_explicit(allowed ? &c->allowed : &c->denied, 1, memory_order_relaxed);
}

/* Sums endpoint ep's counters over the stripes. */
static void ep_sum(const struct rl *rl, unsigned ep, uint64_t *allowed, uint64_t *denied)
{
    uint64_t a = 0, d = 0;
    for (unsigned s = 0; s < RL_EP_STRIPES; s++) {
        struct rl_ep_ctr *c = &rl->ep_ctr[(size_t)s * RL_EP_MAX + ep];
        /* relaxed: statistics. */
        a += atomic_load_explicit(&c->allowed, memory_order_relaxed);
        d += atomic_load_explicit(&c->denied, memory_order_relaxed);
    }
    *allowed = a;
    *denied = d;
}

/* Record i's name into out[RL_EP_NAME]; false when the record is not in use (or not yet
 * named: a claimer is writing it, or died doing so). */
bool rl__ep_name(const struct rl *rl, unsigned i, char *out)
{
    if (i == 0) {
        snprintf(out, RL_EP_NAME, "(other)");
        return true;
    }
    /* acquire: pairs with the release store of id | LIVE in ep_claim(). */
    uint64_t id = atomic_load_explicit(&rl->ep_dir[i].id, memory_order_acquire);
    if (!(id & RL_EP_LIVE))
        return false;
    uint64_t w[RL_EP_NAME / 8];
    for (size_t k = 0; k < RL_EP_NAME / 8; k++)
        w[k] = atomic_load_explicit(&rl->ep_dir[i].name[k], memory_order_relaxed);
    memcpy(out, w, RL_EP_NAME);
    out[RL_EP_NAME - 1] = '\0';
    return true;
}

void rl__ep_totals(const struct rl *rl, unsigned i, uint64_t *allowed, uint64_t *denied)
{
    ep_sum(rl, i, allowed, denied);
}

RL_API int rl_stats_endpoints(rl_t *rl, rl_endpoint_stats *out, size_t n)
{
    if (!rl || (!out && n))
        return rl__err(-EINVAL, "rl_stats_endpoints: rl and out must not be NULL");
    size_t got = 0;
    for (unsigned i = 0; i < RL_EP_MAX; i++) {
        char name[RL_EP_NAME];
        uint64_t a, d;
        if (!rl__ep_name(rl, i, name))
            continue;
        ep_sum(rl, i, &a, &d);
        if (a == 0 && d == 0)
            continue; /* claimed by a rule set, never used */
        if (got < n) {
            rl_endpoint_stats *o = &out[got];
            memset(o, 0, sizeof *o);
            snprintf(o->endpoint, sizeof o->endpoint, "%s", name);
            o->allowed = a;
            o->denied = d;
        }
        got++;
    }
    return (int)got;
}

static RL_TLS uint64_t tl_audit_window, tl_audit_used, tl_audit_dropped;

static void audit_write(struct rl *rl, const rl_layer *l, int layer_idx, const char *key,
                        size_t keylen, uint64_t t)
{
    /* Sampling: at most AUDIT_BURST records per thread per period; the rest are counted. */
    uint64_t w = t / AUDIT_PERIOD_NS;
    if (w != tl_audit_window) {
        tl_audit_window = w;
        tl_audit_used = 0;
    }
    if (tl_audit_used >= AUDIT_BURST) {
        tl_audit_dropped++;
        return;
    }
    tl_audit_used++;
    if (tl_audit_dropped) {
        atomic_fetch_add_explicit(&rl->hdr->audit_dropped, tl_audit_dropped, memory_order_relaxed);
        tl_audit_dropped = 0;
    }
    /* relaxed: only hands out distinct sequence numbers. */
    uint64_t n = atomic_fetch_add_explicit(&rl->hdr->audit_head, 1, memory_order_relaxed);
    struct rl_audit_rec *rec = &rl->audit[n & (RL_AUDIT_RECORDS - 1)];
    atomic_store_explicit(&rec->seq, 2 * n + 1, memory_order_relaxed);
    /* release fence: the odd sequence is visible before any field changes (pairs with the
     * reader's acquire fence after copying the fields). */
    atomic_thread_fence(memory_order_release);
    uint64_t info = (uint64_t)(uint32_t)getpid() | (uint64_t)(l->allowed ? 1 : 0) << 32 |
                    (uint64_t)(layer_idx & 31) << 33 | (uint64_t)(l->scope & 15) << 38 |
                    (uint64_t)(l->algorithm & 15) << 42 | (uint64_t)(l->shadow ? 1 : 0) << 46;
    atomic_store_explicit(&rec->time_ns, t, memory_order_relaxed);
    atomic_store_explicit(&rec->info, info, memory_order_relaxed);
    atomic_store_explicit(&rec->limit, l->limit, memory_order_relaxed);
    atomic_store_explicit(&rec->retry_after_ms, l->retry_after_ms, memory_order_relaxed);
    uint64_t kp[3] = {0, 0, 0};
    memcpy(kp, key, keylen < sizeof kp ? keylen : sizeof kp);
    for (int i = 0; i < 3; i++)
        atomic_store_explicit(&rec->key[i], kp[i], memory_order_relaxed);
    /* release: the fields above are complete before the even sequence; pairs with the acquire
     * load of seq in rl_audit_read(). */
    atomic_store_explicit(&rec->seq, 2 * n + 2, memory_order_release);
}

RL_API int rl_audit_read(rl_t *rl, uint64_t *cursor, rl_audit_record *out, size_t n)
{
    if (!rl || !cursor || (!out && n))
        return rl__err(-EINVAL, "rl_audit_read: rl, cursor and out must not be NULL");
    /* acquire: records before head were at least started. */
    uint64_t head = atomic_load_explicit(&rl->hdr->audit_head, memory_order_acquire);
    uint64_t from = *cursor;
    if (head > RL_AUDIT_RECORDS && from < head - RL_AUDIT_RECORDS)
        from = head - RL_AUDIT_RECORDS; /* older records were overwritten */
    size_t got = 0;
    for (; from < head && got < n; from++) {
        struct rl_audit_rec *rec = &rl->audit[from & (RL_AUDIT_RECORDS - 1)];
        /* acquire: pairs with the writer's release store of the even sequence. */
        uint64_t s1 = atomic_load_explicit(&rec->seq, memory_order_acquire);
        if (s1 != 2 * from + 2)
            continue; /* being written, overwritten, or its writer died */
        uint64_t t = atomic_load_explicit(&rec->time_ns, memory_order_relaxed);
        uint64_t info = atomic_load_explicit(&rec->info, memory_order_relaxed);
        uint64_t limit = atomic_load_explicit(&rec->limit, memory_order_relaxed);
        uint64_t retry = atomic_load_explicit(&rec->retry_after_ms, memory_order_relaxed);
        uint64_t kp[3];
        for (int i = 0; i < 3; i++)
            kp[i] = atomic_load_explicit(&rec->key[i], memory_order_relaxed);
        /* acquire fence: the field loads above happen before the re-check (pairs with the
         * writer's release fence after it marked the record odd). */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&rec->seq, memory_order_relaxed) != s1)
            continue;
        rl_audit_record *o = &out[got++];
        memset(o, 0, sizeof *o);
        o->seq = from;
        o->time_ns = t;
        o->pid = (pid_t)(info & 0xffffffffu);
        o->allowed = (info >> 32) & 1;
        o->layer = (unsigned)((info >> 33) & 31);
        o->scope = (rl_scope)((info >> 38) & 15);
        o->algorithm = (rl_algorithm)((info >> 42) & 15);
        o->shadow = (info >> 46) & 1;
        o->limit = limit;
        o->retry_after_ms = retry;
        memcpy(o->key, kp, sizeof kp);
        for (size_t b = 0; b < sizeof kp; b++)
            if (o->key[b] && ((unsigned char)o->key[b] < 0x20 || (unsigned char)o->key[b] > 0x7e))
                o->key[b] = '?';
        o->key[sizeof kp] = '\0';
    }
    *cursor = from;
    return (int)got;
}

RL_API int rl_stats(rl_t *rl, rl_stats_info *out)
{
    if (!rl || !out)
        return rl__err(-EINVAL, "rl_stats: rl and out must not be NULL");
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < RL_EP_MAX; i++) {
        uint64_t a, d;
        ep_sum(rl, i, &a, &d);
        out->allowed += a;
        out->denied += d;
    }
    for (unsigned i = 0; i < RL_STATS_STRIPES; i++) {
        struct rl_stats_stripe *s = &rl->stats[i];
        /* relaxed: statistics. Bypassed and unruled checks are allowed without an endpoint. */
        uint64_t b = atomic_load_explicit(&s->bypassed, memory_order_relaxed);
        out->allowed += b + atomic_load_explicit(&s->unruled, memory_order_relaxed);
        out->bypassed += b;
        out->shadow_denied += atomic_load_explicit(&s->shadow_denied, memory_order_relaxed);
        out->table_full_open += atomic_load_explicit(&s->full_open, memory_order_relaxed);
        out->table_full_closed += atomic_load_explicit(&s->full_closed, memory_order_relaxed);
        out->warnings += atomic_load_explicit(&s->warnings, memory_order_relaxed);
    }
    out->audit_dropped = atomic_load_explicit(&rl->hdr->audit_dropped, memory_order_relaxed);
    out->audit_written = atomic_load_explicit(&rl->hdr->audit_head, memory_order_relaxed);
    out->checks = out->allowed + out->denied;
    out->config_generation = rl__cfg_generation(rl);
    return 0;
}

/* ---- the check ------------------------------------------------------------------------------- */

static const struct rt_rule *match_rule(const struct rl_rules_rt *rt, const char *method,
                                        const char *path, size_t plen)
{
    size_t mlen = method ? strlen(method) : 0;
    for (size_t i = 0; i < rt->nrules; i++) {
        const struct rt_rule *ru = &rt->rules[i];
        if (ru->mlen && (ru->mlen != mlen || memcmp(ru->method, method, mlen) != 0))
            continue;
        if (rl__glob_match(ru->glob, ru->glen, path, plen))
            return ru;
    }
    return NULL;
}

static const struct rt_tier *find_tier(const struct rl_rules_rt *rt, const char *name)
{
    if (name)
        for (size_t i = 0; i < rt->ntiers; i++)
            if (strcmp(rt->tiers[i].name, name) == 0)
                return &rt->tiers[i];
    return rt->default_tier;
}

struct keyctx {
    const rl_request *req;
    const struct rl_rules_rt *rt;
    const struct rt_rule *rule; /* matched rule, or NULL (defaults) */
    char ip[64];                /* normalised (grouped) client address, or "" */
    const char *path;
    size_t plen;
};

/* Appends s (or its hash when long) to key at *n. */
static void key_put(char *key, size_t *n, const char *s, size_t len)
{
    if (len > LONG_VALUE) {
        *n += (size_t)snprintf(key + *n, RL_KEY_MAX - *n, "#%016llx",
                               (unsigned long long)XXH3_64bits(s, len));
        return;
    }
    memcpy(key + *n, s, len);
    *n += len;
}

static size_t build_key(const struct keyctx *c, const struct rt_layer *l, char *key)
{
    size_t n = 0;
    memcpy(key, l->tag, 8);
    n = 8;
    key[n++] = ':';
    const rl_request *r = c->req;
    const char *who = NULL; /* user or descriptor value */
    char letter;
    switch (l->lim.scope) {
    case RL_SCOPE_GLOBAL:
        key[n++] = 'g';
        return n;
    case RL_SCOPE_ENDPOINT:
        if (l->lim.flags & RL_LIMIT_PER_PATH) {
            uint64_t b = XXH3_64bits(c->path, c->plen) % PATH_BUCKETS;
            n += (size_t)snprintf(key + n, RL_KEY_MAX - n, "p:%llu", (unsigned long long)b);
            return n;
        }
        key[n++] = 'e';
        key[n++] = ':';
        memcpy(key + n, c->rule ? c->rule->tag : "default_", 8);
        return n + 8;
    case RL_SCOPE_USER:
    case RL_SCOPE_USER_ENDPOINT:
        who = r->user && *r->user ? r->user : NULL;
        letter = l->lim.scope == RL_SCOPE_USER ? 'u' : 'x';
        key[n++] = letter;
        key[n++] = ':';
        if (l->lim.scope == RL_SCOPE_USER_ENDPOINT) {
            memcpy(key + n, c->rule ? c->rule->tag : "default_", 8);
            n += 8;
            key[n++] = ':';
        }
        break;
    case RL_SCOPE_DESCRIPTOR:
        for (size_t i = 0; i < r->ndescriptors && l->lim.descriptor; i++)
            if (r->descriptors[i].name && r->descriptors[i].value &&
                strcmp(r->descriptors[i].name, l->lim.descriptor) == 0) {
                who = r->descriptors[i].value;
                break;
            }
        key[n++] = 'd';
        key[n++] = ':';
        break;
    case RL_SCOPE_IP:
    default:
        key[n++] = 'i';
        key[n++] = ':';
        key_put(key, &n, c->ip, strlen(c->ip));
        return n;
    }
    if (who) {
        key[n++] = '=';
        key_put(key, &n, who, strlen(who));
    } else {
        /* No user (or descriptor): counted under the client address. */
        key[n++] = '@';
        key_put(key, &n, c->ip, strlen(c->ip));
    }
    return n;
}

static bool bypassed(const struct rl_rules_rt *rt, const rl_request *req, const struct rl_ip *ip,
                     bool have_ip)
{
    if (have_ip)
        for (size_t i = 0; i < rt->nbypass; i++)
            if (rl__cidr_match(&rt->bypass[i], ip))
                return true;
    if (req->user && *req->user)
        for (size_t i = 0; i < rt->rs->nbypass_users; i++)
            if (strcmp(rt->rs->bypass_users[i], req->user) == 0)
                return true;
    return false;
}

struct taken {
    const struct rt_layer *l;
    rl_limit lim; /* as counted (a STRICT layer without Redis counts locally) */
    char key[RL_KEY_MAX];
    size_t keylen;
};

/* Decides one layer into *out; returns true when units were taken (to refund on denial). */
static bool check_layer(struct rl *rl, const struct keyctx *c, const struct rt_layer *l,
                        uint64_t cost, uint64_t t, uint64_t slack, bool shadow_all, rl_layer *out,
                        struct rl_stats_stripe *st, struct taken *tk)
{
    memset(out, 0, offsetof(rl_layer, rule));
    memcpy(out->rule, l->label, sizeof out->rule);
    memcpy(out->name, l->name, sizeof out->name);
    out->scope = l->lim.scope;
    out->window_ms = l->lim.window_ms;
    out->algorithm = l->lim.algorithm;
    out->mode = l->lim.mode;
    out->shadow = shadow_all || (l->lim.flags & RL_LIMIT_SHADOW);
    tk->l = l;
    tk->lim = l->acq;
    /* Without Redis, STRICT and GLOBAL layers count locally. */
    if ((tk->lim.mode == RL_MODE_STRICT && !rl->strict) ||
        (tk->lim.mode == RL_MODE_GLOBAL && !rl->global))
        tk->lim.mode = RL_MODE_LOCAL;
    tk->keylen = build_key(c, l, tk->key);
    rl_result res;
    int r;
    /* relaxed: the id is a pure function of the limit and the segment; racing first uses store
     * the same value. */
    _Atomic uint32_t *lidp = (_Atomic uint32_t *)&l->lid_plus1; /* a cache in a const rule */
    uint32_t lid1 = atomic_load_explicit(lidp, memory_order_relaxed);
    if (lid1 && tk->lim.mode == l->acq.mode) {
        r = rl__acquire_lid(rl, tk->key, tk->keylen, &tk->lim, &l->p, lid1 - 1, cost, t, slack,
                            &res);
    } else {
        r = rl__acquire_key(rl, tk->key, tk->keylen, &tk->lim, cost, t, slack, &res);
        uint32_t lid;
        int e;
        if (r == 0 && tk->lim.mode == l->acq.mode && rl__limit_id(rl, &tk->lim, &lid, &e))
            atomic_store_explicit(lidp, lid + 1, memory_order_relaxed);
    }
    if (r < 0) {
        /* No decision from the table (full, or contention): on_full decides. */
        out->table_full = true;
        out->limit = l->p.limit;
        if (l->lim.flags & RL_LIMIT_ON_FULL_CLOSED) {
            out->allowed = false;
            out->retry_after_ms = 1000;
            COUNT(st, full_closed);
        } else {
            out->allowed = true;
            COUNT(st, full_open);
        }
        return false;
    }
    out->allowed = res.allowed;
    out->limit = res.limit;
    out->remaining = res.remaining;
    out->retry_after_ms = res.retry_after_ms;
    out->reset_after_ms = res.reset_after_ms;
    if (l->warn && res.limit && res.remaining <= res.limit &&
        (rl_u128)(res.limit - res.remaining) * 1000 >= (rl_u128)l->warn * res.limit) {
        out->warning = true;
        COUNT(st, warnings);
    }
    if (!res.allowed && out->shadow)
        COUNT(st, shadow_denied);
    return res.allowed;
}

/*
 * The check, in the order a request meets it:
 *   request setup   check_args_ok (its messages: check_args_error, cold), begin (the
 *                   decision's defaults, how the check runs, where its counts go),
 *                   rules_current (the compiled rules, current with the segment; the rebuild,
 *                   rules_reload, is cold and out of line), key_setup (path, client address)
 *   the layer loop  bypassed, then take_layers over request_lists (rule or defaults, globals,
 *                   tier), refunding on a denial
 *   the outcome     finish: the limiting layer, the endpoint counter, the audit record, and
 *                   rl_explain's keys
 * Everything but the cold parts is inlined into check(): one hot function, as before the split.
 */
#define HOT static inline __attribute__((always_inline))

/* Why the arguments are unusable (rl_check's messages); cold. */
static __attribute__((noinline, cold)) int check_args_error(const void *rl, const rl_request *req,
                                                            const rl_decision *out)
{
    if (!rl || !req || !out)
        return rl__err(-EINVAL, "rl_check: rl, req and out must not be NULL");
    if (!req->method || !req->path)
        return rl__err(-EINVAL, "rl_check: the request needs a method and a path");
    return rl__err(-EINVAL, "rl_check: ndescriptors is %zu but descriptors is NULL",
                   req->ndescriptors);
}

HOT bool check_args_ok(const void *rl, const rl_request *req, const rl_decision *out)
{
    return rl && req && out && req->method && req->path && (!req->ndescriptors || req->descriptors);
}

/* How one check runs: set up once, read by the layer loop and the outcome. */
struct run {
    uint64_t cost, t, slack;    /* units per layer (0: a peek), the time, the clock's slack */
    struct rl_stats_stripe *st; /* the thread's stripe, or scratch */
    unsigned stripe;
    bool peek;  /* rl_explain: nothing taken, counted or audited */
    bool count; /* decisions are counted (not a peek, not RL_OPEN_NO_STATS) */
};

/* The decision's defaults, and how this check runs: its cost and time, and where its counts
 * go: the thread's stripe, or scratch (a peek's counts, or all of them with RL_OPEN_NO_STATS,
 * go nowhere). */
HOT void begin(struct rl *rl, const rl_request *req, uint64_t now_ns, uint64_t slack, bool peek,
               rl_decision *out, struct run *run, struct rl_stats_stripe *scratch)
{
    run->peek = peek;
    run->cost = peek ? 0 : req->cost ? req->cost : 1;
    run->t = now_ns < RL_TIME_BASE_NS ? RL_TIME_BASE_NS : now_ns;
    run->slack = slack;
    run->count = !peek && rl->count;
    run->stripe = 0;
    if (peek)
        out->endpoint[0] = '\0';
    out->allowed = true;
    out->bypassed = false;
    out->disabled = !rl->enabled;
    out->n = 0;
    out->limiting = -1;
    out->now_ns = now_ns;
    if (run->count) {
        run->stripe = my_stripe();
        run->st = &rl->stats[run->stripe];
    } else {
        memset(scratch, 0, sizeof *scratch);
        run->st = scratch;
    }
}

/* The segment has a rule set this process has not compiled (or none is compiled yet): leave the
 * read-side section (a rebuild waits for a grace period, which must not happen inside one),
 * rebuild, and come back. Cold: once per process and per reload. */
static __attribute__((noinline, cold)) struct rl_rules_rt *rules_reload(struct rl *rl,
                                                                        struct rl_rules_rt *rt)
{
    if (rt)
        RL_TSAN_RELEASE(rt);
    urcu_bp_read_unlock();
    rules_refresh(rl, rt == NULL);
    urcu_bp_read_lock();
    /* acquire: pairs with the release store in rules_refresh(). */
    return atomic_load_explicit(&rl->rules, memory_order_acquire);
}

/* Inside a read-side section: the compiled rules, current with the segment; NULL when there are
 * none at all. */
HOT struct rl_rules_rt *rules_current(struct rl *rl)
{
    /* acquire: pairs with the release store in rules_refresh(); the grace period there keeps
     * rt alive until urcu_bp_read_unlock(). */
    struct rl_rules_rt *rt = atomic_load_explicit(&rl->rules, memory_order_acquire);
    uint64_t gen = rl__cfg_generation(rl);
    if (__builtin_expect(!rt || rt->gen != gen, 0))
        rt = rules_reload(rl, rt);
    return rt;
}

/* The key context: the path without its query, the client address grouped by the rule set's
 * IPv6 prefix (or kept as given when it is not an address). Returns whether *ip is one. */
HOT bool key_setup(struct keyctx *c, const rl_request *req, const struct rl_rules_rt *rt,
                   struct rl_ip *ip)
{
    c->req = req;
    c->rt = rt;
    c->path = req->path;
    const char *q = strchr(req->path, '?');
    c->plen = q ? (size_t)(q - req->path) : strlen(req->path);
    bool have_ip = req->ip && rl__ip_parse(req->ip, strlen(req->ip), ip) == 0;
    if (have_ip) {
        unsigned prefix = ip->family == 6 ? rt->ipv6_prefix : 32;
        if (rl__ip_format(ip, prefix, c->ip, sizeof c->ip) < 0)
            have_ip = false;
    }
    if (!have_ip) /* not an address: keyed as given (callers should pass rl_client_ip's) */
        snprintf(c->ip, sizeof c->ip, "?%.60s", req->ip ? req->ip : "");
    return have_ip;
}

/* The layer lists a request meets: its rule's (or the defaults), the globals, its tier's. */
struct lists {
    const struct rt_layer *l[3];
    size_t n[3];
};

HOT void request_lists(const struct rl_rules_rt *rt, const struct keyctx *c, const rl_request *req,
                       struct lists *ls)
{
    ls->l[0] = c->rule ? c->rule->layers : rt->defaults;
    ls->n[0] = c->rule ? c->rule->n : rt->ndefaults;
    ls->l[1] = rt->globals;
    ls->n[1] = rt->nglobals;
    const struct rt_tier *tier =
        (req->tier || (req->user && *req->user)) ? find_tier(rt, req->tier) : NULL;
    ls->l[2] = tier ? tier->layers : NULL;
    ls->n[2] = tier ? tier->n : 0;
}

/* The layer loop: each layer decides into out->layers[out->n++] and what it took is in taken[].
 * Local layers first, STRICT (Redis round trips) last: a request a local layer denies never
 * costs a round trip, and there is less to refund. The first non-shadow denial stops the loop
 * and gives back what the earlier layers took (all or nothing). Returns whether it denied. */
HOT bool take_layers(struct rl *rl, const struct keyctx *c, const struct lists *ls,
                     const struct run *run, rl_decision *out, struct taken *taken)
{
    bool shadow_all = !rl->enabled;
    bool took[RL_MAX_LAYERS];
    size_t n = 0;
    bool denied = false;
    for (int pass = 0; pass < 2 && !denied; pass++)
        for (int li = 0; li < 3 && !denied; li++) {
            for (size_t i = 0; i < ls->n[li] && n < RL_MAX_LAYERS; i++) {
                if ((ls->l[li][i].acq.mode == RL_MODE_STRICT) != (pass == 1))
                    continue;
                rl_layer *lo = &out->layers[n];
                took[n] = check_layer(rl, c, &ls->l[li][i], run->cost, run->t, run->slack,
                                      shadow_all, lo, run->st, &taken[n]);
                n++;
                if (!lo->allowed && !lo->shadow) {
                    denied = true;
                    break;
                }
            }
        }
    out->n = n;
    if (denied) {
        for (size_t i = 0; i + 1 < n; i++)
            if (took[i])
                rl__refund_key(rl, taken[i].key, taken[i].keylen, &taken[i].lim, run->cost, run->t);
        out->allowed = false;
    }
    return denied;
}

/* The limiting layer: the denying one (the longest wait), else the one with the least left
 * (shadow layers only when nothing else applies); -1 without layers. */
HOT int limiting_layer(const rl_decision *out, bool denied)
{
    int best = -1;
    for (size_t i = 0; i < out->n; i++) {
        const rl_layer *l = &out->layers[i];
        if (best < 0) {
            best = (int)i;
            continue;
        }
        const rl_layer *b = &out->layers[best];
        if (b->shadow != l->shadow) {
            if (b->shadow)
                best = (int)i;
            continue;
        }
        if (denied) {
            if (!l->allowed && (b->allowed || l->retry_after_ms > b->retry_after_ms))
                best = (int)i;
        } else if (l->remaining < b->remaining ||
                   (l->remaining == b->remaining && l->limit < b->limit)) {
            best = (int)i;
        }
    }
    return best;
}

/* rl_explain: the layers' keys into keys, one per line, as far as they fit. */
static void write_keys(const struct taken *taken, size_t n, char *keys, size_t keys_len)
{
    for (size_t i = 0, o = 0; i < n; i++) {
        if (o + taken[i].keylen + 1 < keys_len) {
            memcpy(keys + o, taken[i].key, taken[i].keylen);
            keys[o + taken[i].keylen] = '\n';
            keys[o + taken[i].keylen + 1] = '\0';
        }
        o += taken[i].keylen + 1;
    }
}

/* The outcome: the limiting layer, the endpoint's counter, the audit record (denials, or every
 * decision with audit: all), and rl_explain's keys. */
HOT void finish(struct rl *rl, const struct rl_rules_rt *rt, const struct keyctx *c,
                const struct run *run, bool denied, const struct taken *taken, rl_decision *out,
                char *keys, size_t keys_len)
{
    int best = limiting_layer(out, denied);
    out->limiting = best;
    if (run->count)
        ep_count(rl, run->stripe, c->rule ? c->rule->ep : rt->ep_default, !denied);
    if (!run->peek && best >= 0 && rt->audit != RL_AUDIT_OFF &&
        (denied || rt->audit == RL_AUDIT_ALL))
        audit_write(rl, &out->layers[best], best, taken[best].key, taken[best].keylen, run->t);
    if (run->peek)
        write_keys(taken, out->n, keys, keys_len);
}

/* A bypassed request: no layer is taken; rl_explain still names the endpoint it matched. */
HOT void bypass_outcome(const struct rl_rules_rt *rt, const struct keyctx *c, bool peek,
                        rl_decision *out)
{
    out->bypassed = true;
    if (peek) {
        const struct rt_rule *ru = match_rule(rt, c->req->method, c->req->path, c->plen);
        snprintf(out->endpoint, sizeof out->endpoint, "%s", ru ? ru->pattern : "(default)");
    }
}

/* slack: see struct rl_algo_ops.decide (caller-given time, or the segment's own clock). */
/* keys != NULL: rl_explain(): every layer peeks (cost 0), nothing is counted or audited, and
 * the layers' keys are written to keys, one per line. */
static int check(struct rl *rl, const rl_request *req, uint64_t now_ns, uint64_t slack,
                 rl_decision *out, char *keys, size_t keys_len)
{
    /* request setup */
    if (__builtin_expect(!check_args_ok(rl, req, out), 0))
        return check_args_error(rl, req, out);
    if (keys && keys_len)
        keys[0] = '\0';
    struct run run;
    struct rl_stats_stripe scratch;
    begin(rl, req, now_ns, slack, keys != NULL, out, &run, &scratch);
    urcu_bp_read_lock();
    struct rl_rules_rt *rt = rules_current(rl);
    if (!rt) {
        urcu_bp_read_unlock();
        COUNT(run.st, unruled);
        return 0; /* no rules at all: nothing limits */
    }
    out->config_generation = rt->gen;
    struct keyctx c;
    struct rl_ip ip;
    bool have_ip = key_setup(&c, req, rt, &ip);
    if (bypassed(rt, req, &ip, have_ip)) {
        bypass_outcome(rt, &c, run.peek, out);
        RL_TSAN_RELEASE(rt);
        urcu_bp_read_unlock();
        COUNT(run.st, bypassed);
        return 0;
    }
    c.rule = match_rule(rt, req->method, req->path, c.plen);
    if (run.peek)
        snprintf(out->endpoint, sizeof out->endpoint, "%s", c.rule ? c.rule->pattern : "(default)");

    /* the layer loop */
    struct lists ls;
    request_lists(rt, &c, req, &ls);
    struct taken taken[RL_MAX_LAYERS];
    bool denied = take_layers(rl, &c, &ls, &run, out, taken);

    /* the outcome */
    finish(rl, rt, &c, &run, denied, taken, out, keys, keys_len);
    RL_TSAN_RELEASE(rt);
    urcu_bp_read_unlock();
    return 0;
}

RL_API int rl_rule_key_prefixes(rl_t *rl, const char *rule, char (*prefixes)[10], size_t n)
{
    if (!rl || !rule || (!prefixes && n))
        return rl__err(-EINVAL, "rl_rule_key_prefixes: rl, rule and prefixes must not be NULL");
    rules_refresh(rl, true); /* the segment's current generation */
    urcu_bp_read_lock();
    /* acquire: pairs with the release store in rules_refresh(); see check(). */
    const struct rl_rules_rt *rt = atomic_load_explicit(&rl->rules, memory_order_acquire);
    const struct rt_layer *ls = NULL;
    size_t nl = 0;
    bool found = false;
    if (rt && strcmp(rule, "default") == 0) {
        ls = rt->defaults, nl = rt->ndefaults, found = true;
    } else if (rt && strcmp(rule, "global") == 0) {
        ls = rt->globals, nl = rt->nglobals, found = true;
    } else if (rt && strncmp(rule, "tier:", 5) == 0) {
        for (size_t i = 0; i < rt->ntiers && !found; i++)
            if (strcmp(rt->tiers[i].name, rule + 5) == 0)
                ls = rt->tiers[i].layers, nl = rt->tiers[i].n, found = true;
    } else if (rt) {
        for (size_t i = 0; i < rt->nrules && !found; i++)
            if (strcmp(rt->rules[i].pattern, rule) == 0)
                ls = rt->rules[i].layers, nl = rt->rules[i].n, found = true;
    }
    for (size_t i = 0; i < nl && i < n; i++)
        snprintf(prefixes[i], 10, "%s:", ls[i].tag);
    if (rt)
        RL_TSAN_RELEASE(rt);
    urcu_bp_read_unlock();
    if (!found)
        return rl__err(-ENOENT,
                       "no rule \"%.100s\" in the rule set: name a rule by its pattern as "
                       "written (rlctl config show), or default, global, tier:NAME",
                       rule);
    return (int)nl;
}

RL_API int rl_check_at(rl_t *rl, const rl_request *req, uint64_t now_ns, rl_decision *out)
{
    return check(rl, req, now_ns, RL_CLOCK_SLACK_NS, out, NULL, 0);
}

RL_API int rl_check(rl_t *rl, const rl_request *req, rl_decision *out)
{
    if (!rl)
        return rl__err(-EINVAL, "rl_check: rl must not be NULL");
    return check(rl, req, rl_clock_ns(rl), UINT64_MAX, out, NULL, 0);
}

RL_API int rl_explain(rl_t *rl, const rl_request *req, rl_decision *out, char *keys,
                      size_t keys_len)
{
    if (!rl || !keys || !keys_len)
        return rl__err(-EINVAL, "rl_explain: rl and keys must not be NULL or empty");
    return check(rl, req, rl_clock_ns(rl), UINT64_MAX, out, keys, keys_len);
}
