/*
 * The rule set: rlctl config show|check|reload, explain (which rule and layers apply, what each
 * would answer) and bypass add|rm|ls (the emergency bypass list).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rlctl.h"

int cmd_config_show(rl_t *rl, const struct opts *o)
{
    size_t len = 4096;
    char *buf = NULL;
    long n;
    for (;;) {
        char *b = realloc(buf, len);
        if (!b) {
            free(buf);
            fputs("rlctl: out of memory\n", stderr);
            return EXIT_FAIL;
        }
        buf = b;
        n = rl_config_dump(rl, buf, len);
        if (n < 0) {
            free(buf);
            fail_rl("rl_config_dump", (int)n);
            return EXIT_FAIL;
        }
        if ((size_t)n < len)
            break;
        len = (size_t)n + 1;
    }
    int ret = EXIT_OK;
    if (o->json) {
        rl_stats_info st;
        int rc = rl_stats(rl, &st);
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        if (rc == 0)
            set_u64(doc, "config_generation", st.config_generation);
        json_object_set_new(doc, "yaml", json_stringn(buf, (size_t)n));
        ret = emit_json(doc);
    } else {
        fwrite(buf, 1, (size_t)n, g_out);
        if (n > 0 && buf[n - 1] != '\n')
            fputc('\n', g_out);
    }
    free(buf);
    return ret;
}

int cmd_config_check(const struct opts *o)
{
    const char *path = o->pos[2];
    int rc = rl_check_config_file(path);
    if (rc != 0) {
        char detail[1024];
        snprintf(detail, sizeof detail, "%s", rl_errmsg());
        if (o->json) {
            json_t *doc = json_object();
            json_object_set_new(doc, "file", json_string(path));
            json_object_set_new(doc, "valid", json_false());
            json_object_set_new(doc, "error", json_string(detail[0] ? detail : rl_strerror(rc)));
            emit_json(doc);
        }
        fprintf(stderr, "rlctl: %s\n", detail[0] ? detail : rl_strerror(rc));
        return EXIT_FAIL;
    }
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "file", json_string(path));
        json_object_set_new(doc, "valid", json_true());
        return emit_json(doc);
    }
    fprintf(g_out, "%s: ok\n", path);
    return EXIT_OK;
}

int cmd_config_reload(rl_t *rl, const struct opts *o)
{
    const char *path = o->pos[2];
    int rc = rl_load_config(rl, path);
    if (rc != 0) {
        char detail[1024];
        snprintf(detail, sizeof detail, "%s", rl_errmsg());
        fprintf(stderr, "rlctl: %s not loaded, the rules in %s are unchanged: %s\n", path, o->shm,
                detail[0] ? detail : rl_strerror(rc));
        return EXIT_FAIL;
    }
    rl_stats_info st;
    uint64_t gen = rl_stats(rl, &st) == 0 ? st.config_generation : 0;
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        json_object_set_new(doc, "file", json_string(path));
        json_object_set_new(doc, "loaded", json_true());
        set_u64(doc, "config_generation", gen);
        return emit_json(doc);
    }
    fprintf(g_out, "%s: loaded into %s (config generation %" PRIu64 ")\n", path, o->shm, gen);
    return EXIT_OK;
}

/* ---- explain ------------------------------------------------------------------------------ */

static const char *mode_str(rl_mode m)
{
    return m == RL_MODE_GLOBAL ? "global" : m == RL_MODE_STRICT ? "strict" : "local";
}

int cmd_explain(rl_t *rl, const struct opts *o)
{
    rl_request req;
    memset(&req, 0, sizeof req);
    req.method = o->pos[0];
    req.path = o->pos[1];
    req.ip = o->bypass_ip ? o->bypass_ip : "127.0.0.1";
    req.user = o->bypass_user;
    req.tier = o->tier;
    rl_decision d;
    char keys[RL_MAX_LAYERS * (RL_KEY_MAX + 1)];
    int rc = rl_explain(rl, &req, &d, keys, sizeof keys);
    if (rc < 0) {
        fail_rl("rl_explain", rc);
        return EXIT_FAIL;
    }
    const char *key_of[RL_MAX_LAYERS] = {0};
    char *p = keys;
    for (size_t i = 0; i < d.n && *p; i++) {
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        key_of[i] = p;
        p = nl + 1;
    }
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        json_object_set_new(doc, "method", json_string(req.method));
        json_object_set_new(doc, "path", json_string(req.path));
        json_object_set_new(doc, "ip", json_string(req.ip));
        if (req.user)
            json_object_set_new(doc, "user", json_string(req.user));
        json_object_set_new(doc, "would_allow", json_boolean(d.allowed));
        json_object_set_new(doc, "bypassed", json_boolean(d.bypassed));
        set_u64(doc, "config_generation", d.config_generation);
        json_t *arr = json_array();
        for (size_t i = 0; i < d.n; i++) {
            const rl_layer *l = &d.layers[i];
            json_t *j = json_object();
            json_object_set_new(j, "rule", json_string(l->rule));
            json_object_set_new(j, "layer", json_string(l->name));
            json_object_set_new(j, "key", key_of[i] ? json_string(key_of[i]) : json_null());
            json_object_set_new(j, "scope", json_string(scope_name(l->scope)));
            json_object_set_new(j, "algorithm", json_string(alg_name(l->algorithm)));
            json_object_set_new(j, "mode", json_string(mode_str(l->mode)));
            set_u64(j, "limit", l->limit);
            set_u64(j, "window_ms", l->window_ms);
            set_u64(j, "remaining", l->remaining);
            json_object_set_new(j, "allowed", json_boolean(l->allowed));
            json_object_set_new(j, "shadow", json_boolean(l->shadow));
            json_object_set_new(j, "limiting", json_boolean((int)i == d.limiting));
            json_array_append_new(arr, j);
        }
        json_object_set_new(doc, "layers", arr);
        return emit_json(doc);
    }
    fprintf(g_out, "%s %s from %s%s%s: %s\n", req.method, req.path, req.ip,
            req.user ? ", user " : "", req.user ? req.user : "",
            d.bypassed  ? "bypassed (on the bypass list)"
            : d.allowed ? "would be allowed"
                        : "would be denied");
    if (!d.bypassed && d.n == 0)
        fprintf(g_out, "no layer applies (no rule matches and the rule set has no defaults)\n");
    for (size_t i = 0; i < d.n; i++) {
        const rl_layer *l = &d.layers[i];
        fprintf(g_out,
                "%s layer %s of %s: %s %s, %" PRIu64 " per %" PRIu64 " ms: remaining %" PRIu64
                "%s%s\n    key %s\n",
                (int)i == d.limiting ? "*" : " ", l->name, l->rule, mode_str(l->mode),
                alg_name(l->algorithm), l->limit, l->window_ms, l->remaining,
                l->allowed ? "" : ", would deny", l->shadow ? " (shadow)" : "",
                key_of[i] ? key_of[i] : "?");
    }
    return EXIT_OK;
}

/* ---- bypass ------------------------------------------------------------------------------- */

static int bypass_list_json(rl_t *rl, rl_bypass_kind kind, json_t **out)
{
    long n = rl_bypass_list(rl, kind, NULL, 0);
    if (n < 0)
        return (int)n;
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        return -ENOMEM;
    rl_bypass_list(rl, kind, buf, (size_t)n + 1);
    json_t *arr = json_array();
    for (char *p = buf, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl)
            break;
        json_array_append_new(arr, json_stringn(p, (size_t)(nl - p)));
    }
    free(buf);
    *out = arr;
    return 0;
}

int cmd_bypass(rl_t *rl, const struct opts *o, const char *action)
{
    if (strcmp(action, "ls") == 0) {
        json_t *ips = NULL, *users = NULL;
        int rc = bypass_list_json(rl, RL_BYPASS_IP, &ips);
        if (rc == 0)
            rc = bypass_list_json(rl, RL_BYPASS_USER, &users);
        if (rc < 0) {
            json_decref(ips);
            fail_rl("rl_bypass_list", rc);
            return EXIT_FAIL;
        }
        if (o->json) {
            json_t *doc = json_object();
            json_object_set_new(doc, "segment", json_string(o->shm));
            json_object_set_new(doc, "ips", ips);
            json_object_set_new(doc, "users", users);
            return emit_json(doc);
        }
        for (size_t i = 0; i < json_array_size(ips); i++)
            fprintf(g_out, "ip    %s\n", json_string_value(json_array_get(ips, i)));
        for (size_t i = 0; i < json_array_size(users); i++)
            fprintf(g_out, "user  %s\n", json_string_value(json_array_get(users, i)));
        if (json_array_size(ips) + json_array_size(users) == 0)
            fprintf(g_out, "the bypass list of %s is empty\n", o->shm);
        json_decref(ips);
        json_decref(users);
        return EXIT_OK;
    }
    bool add = strcmp(action, "add") == 0;
    if (!o->bypass_ip == !o->bypass_user)
        return usage_error("bypass %s wants one of --ip ADDRESS|CIDR or --user NAME", action);
    rl_bypass_kind kind = o->bypass_ip ? RL_BYPASS_IP : RL_BYPASS_USER;
    const char *value = o->bypass_ip ? o->bypass_ip : o->bypass_user;
    int rc = add ? rl_bypass_add(rl, kind, value) : rl_bypass_remove(rl, kind, value);
    if (rc < 0) {
        fprintf(stderr, "rlctl: bypass %s: %s\n", action, rl_errmsg());
        return EXIT_FAIL;
    }
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        json_object_set_new(doc, add ? "added" : "removed", json_string(value));
        json_object_set_new(doc, "kind", json_string(o->bypass_ip ? "ip" : "user"));
        return emit_json(doc);
    }
    fprintf(g_out, "%s %s %s %s the bypass list of %s (in force at each worker's next check)\n",
            add ? "added" : "removed", o->bypass_ip ? "address" : "user", value,
            add ? "to" : "from", o->shm);
    return EXIT_OK;
}
