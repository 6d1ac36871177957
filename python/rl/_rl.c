/*
 * rl._rl: the CPython binding of librl (python/rl/ wraps it; docs/python.md).
 *
 * Uses rl's public API only (include/rl/rl.h). Three types:
 *  - Handle: a segment handle, opened lazily at its first use (so a gunicorn --preload master
 *    that builds a Limiter at import opens nothing; a forked child that inherited an open handle
 *    may use it at once, as rl.h allows: the library restarts its sync thread and drops inherited
 *    Redis connections itself).
 *  - Result: one rl_acquire() answer. Decision: one rl_check() answer (the whole rl_decision).
 *
 * The GIL. LOCAL and GLOBAL decisions never block and take tens of nanoseconds: releasing and
 * re-taking the GIL would cost more than the decision, so they run with the GIL held. A STRICT
 * acquire, reset(), health() and a check called with nogil=True (what Limiter.check_async() does
 * from a worker thread) may wait on Redis up to the command timeout; configure_endpoint(),
 * load_config() and bypass add/remove may wait ~2 s for another process's writer lock; rl_open()
 * may wait while another process initialises the segment, and rl_close() joins the sync thread:
 * all of them release the GIL around the call.
 * A handle counts the calls running without the GIL; close() while one runs defers the
 * rl_close() to the last of them, so a handle is never freed under a running call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <rl/rl.h>

static PyObject *Error;           /* rl.Error (OSError): errno, rl's message */
static PyObject *InvalidArgument; /* rl.InvalidArgument (rl.Error, ValueError) */

/* Raises the exception for rl's negative code `rc`, carrying rl_errmsg() (the calling thread's
 * message: call it on the thread that made the failing call, before any other rl call). */
static PyObject *raise_rl_msg(int rc, const char *what, const char *msg);

static PyObject *raise_rl(int rc, const char *what)
{
    return raise_rl_msg(rc, what, rl_errmsg());
}

/* The same with a message taken earlier (by a call that ran without the GIL, on this thread). */
static PyObject *raise_rl_msg(int rc, const char *what, const char *msg)
{
    if (!msg || !*msg)
        msg = rl_strerror(rc);
    PyObject *type = (rc == -EINVAL || rc == -ERANGE || rc == -E2BIG) ? InvalidArgument : Error;
    PyObject *text = PyUnicode_FromFormat("%s: %s", what, msg);
    if (!text)
        return NULL;
    /* OSError(errno, strerror): str() is "[Errno N] strerror"; .strerror carries the message. */
    PyObject *full = Py_BuildValue("(iO)", -rc, text);
    Py_DECREF(text);
    if (!full)
        return NULL;
    PyErr_SetObject(type, full);
    Py_DECREF(full);
    return NULL;
}

/* ---- names -------------------------------------------------------------------------------- */

/* Parses an algorithm name ("token_bucket", ...) or number. -1 with an exception on error. */
static int parse_enum(PyObject *o, const char *(*name)(int), int count, const char *what)
{
    if (PyLong_Check(o)) {
        int overflow = 0;
        long v = PyLong_AsLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (!overflow && v >= 0 && v < count)
            return (int)v;
        PyErr_Format(InvalidArgument, "%s: %R is not a valid value (0..%d)", what, o, count - 1);
        return -1;
    }
    if (PyUnicode_Check(o)) {
        const char *s = PyUnicode_AsUTF8(o);
        if (!s)
            return -1;
        for (int i = 0; i < count; i++)
            if (strcmp(s, name(i)) == 0)
                return i;
        PyErr_Format(InvalidArgument, "%s: unknown value '%s'", what, s);
        return -1;
    }
    PyErr_Format(PyExc_TypeError, "%s: expected a str, got %.50s", what, Py_TYPE(o)->tp_name);
    return -1;
}

static const char *alg_name(int i)
{
    return rl_algorithm_name((rl_algorithm)i);
}

static const char *scope_name(int i)
{
    static const char *const names[] = {"ip",       "user",       "global",
                                        "endpoint", "descriptor", "user_endpoint"};
    return names[i];
}

static const char *mode_name(int i)
{
    static const char *const names[] = {"local", "global", "strict"};
    return names[i];
}

/* ---- argument helpers --------------------------------------------------------------------- */

/* Vectorcall keyword parsing: out[i] is the argument named names[i] (positional first) or NULL. */
static int parse_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                      const char *const *names, int n, int required, PyObject **out, const char *fn)
{
    if (nargs > n) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments (%zd given)", fn,
                     n, nargs);
        return -1;
    }
    for (int i = 0; i < n; i++)
        out[i] = i < nargs ? args[i] : NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *kw = PyTuple_GET_ITEM(kwnames, k);
        int found = -1;
        for (int i = 0; i < n; i++)
            if (PyUnicode_CompareWithASCIIString(kw, names[i]) == 0) {
                found = i;
                break;
            }
        if (found < 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fn, kw);
            return -1;
        }
        if (out[found]) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn,
                         names[found]);
            return -1;
        }
        out[found] = args[nargs + k];
    }
    for (int i = 0; i < required; i++)
        if (!out[i] || out[i] == Py_None) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fn, names[i]);
            return -1;
        }
    return 0;
}

/* A non-negative integer argument; None or absent leaves *v alone. */
static int arg_u64(PyObject *o, const char *name, uint64_t *v)
{
    if (!o || o == Py_None)
        return 0;
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: expected an int, got %.50s", name, Py_TYPE(o)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (x == -1 && PyErr_Occurred())
        return -1;
    if (overflow || x < 0) {
        PyErr_Format(InvalidArgument, "%s: %R is out of range (0 .. 2**63-1)", name, o);
        return -1;
    }
    *v = (uint64_t)x;
    return 0;
}

/* An unsigned option (rl_options' unsigned fields): 0, None or absent keeps *v (the default);
 * more than UINT_MAX is an error, never a silent truncation (2**32 ms would become 0). */
static int arg_uint(PyObject *o, const char *name, unsigned *v)
{
    uint64_t x = 0;
    if (arg_u64(o, name, &x) < 0)
        return -1;
    if (x > UINT_MAX) {
        PyErr_Format(InvalidArgument, "%s: %R is out of range (0 .. %u)", name, o, UINT_MAX);
        return -1;
    }
    if (x)
        *v = (unsigned)x;
    return 0;
}

/* A window in seconds (int or float, > 0) into whole milliseconds. */
static int arg_window(PyObject *o, uint64_t *ms)
{
    double s;
    if (PyLong_Check(o)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (x == -1 && PyErr_Occurred())
            return -1;
        if (overflow || x <= 0 || x > 10LL * 366 * 86400) {
            PyErr_Format(InvalidArgument,
                         "window: %R s is out of range (more than 0, at most 10 years)", o);
            return -1;
        }
        *ms = (uint64_t)x * 1000u;
        return 0;
    }
    if (!PyFloat_Check(o)) {
        PyErr_Format(PyExc_TypeError, "window: expected seconds as int or float, got %.50s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    s = PyFloat_AS_DOUBLE(o);
    if (!(s >= 0.001) || s > 10.0 * 366 * 86400) {
        PyErr_Format(InvalidArgument,
                     "window: %R s is out of range (at least 0.001 s, at most 10 years)", o);
        return -1;
    }
    *ms = (uint64_t)llround(s * 1000.0);
    return 0;
}

/* A key: str (UTF-8) or bytes. */
static int arg_key(PyObject *o, const char **p, Py_ssize_t *n)
{
    if (PyUnicode_Check(o)) {
        *p = PyUnicode_AsUTF8AndSize(o, n);
        return *p ? 0 : -1;
    }
    if (PyBytes_Check(o)) {
        *p = PyBytes_AS_STRING(o);
        *n = PyBytes_GET_SIZE(o);
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "key: expected str or bytes, got %.50s", Py_TYPE(o)->tp_name);
    return -1;
}

/* An optional string argument: NULL for absent or None. */
static int arg_str(PyObject *o, const char *name, const char **s)
{
    *s = NULL;
    if (!o || o == Py_None)
        return 0;
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a str or None, got %.50s", name,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    Py_ssize_t n;
    *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (!*s)
        return -1;
    if ((Py_ssize_t)strlen(*s) != n) {
        PyErr_Format(InvalidArgument, "%s: contains a NUL character", name);
        return -1;
    }
    return 0;
}

/* ---- Result ------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD rl_result r;
} ResultObject;

static PyTypeObject ResultType;

static PyObject *ms_to_s(uint64_t ms)
{
    if (ms == RL_RETRY_NEVER)
        return PyFloat_FromDouble(INFINITY);
    return PyFloat_FromDouble((double)ms / 1000.0);
}

static PyObject *result_get(ResultObject *self, void *which)
{
    switch ((intptr_t)which) {
    case 0:
        return PyBool_FromLong(self->r.allowed);
    case 1:
        return PyLong_FromUnsignedLongLong(self->r.limit);
    case 2:
        return PyLong_FromUnsignedLongLong(self->r.remaining);
    case 3:
        return ms_to_s(self->r.retry_after_ms);
    case 4:
        return ms_to_s(self->r.reset_after_ms);
    case 5:
        return PyLong_FromUnsignedLongLong(self->r.retry_after_ms);
    default:
        return PyLong_FromUnsignedLongLong(self->r.reset_after_ms);
    }
}

static PyGetSetDef result_getset[] = {
    {"allowed", (getter)result_get, NULL, "True when the request was admitted.", (void *)0},
    {"limit", (getter)result_get, NULL, "The most the key can take at once.", (void *)1},
    {"remaining", (getter)result_get, NULL, "Whole requests still available.", (void *)2},
    {"retry_after", (getter)result_get, NULL,
     "Seconds to wait for `cost` to fit (0.0 when allowed; inf: never).", (void *)3},
    {"reset_after", (getter)result_get, NULL, "Seconds until the key is back to full.", (void *)4},
    {"retry_after_ms", (getter)result_get, NULL, "retry_after in whole milliseconds.", (void *)5},
    {"reset_after_ms", (getter)result_get, NULL, "reset_after in whole milliseconds.", (void *)6},
    {NULL},
};

static int result_bool(ResultObject *self)
{
    return self->r.allowed;
}

static PyObject *result_repr(ResultObject *self)
{
    return PyUnicode_FromFormat(
        "Result(allowed=%s, limit=%llu, remaining=%llu, "
        "retry_after_ms=%llu, reset_after_ms=%llu)",
        self->r.allowed ? "True" : "False", (unsigned long long)self->r.limit,
        (unsigned long long)self->r.remaining, (unsigned long long)self->r.retry_after_ms,
        (unsigned long long)self->r.reset_after_ms);
}

static PyNumberMethods result_as_number = {.nb_bool = (inquiry)result_bool};

static PyTypeObject ResultType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rl.Result",
    .tp_basicsize = sizeof(ResultObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The answer to one acquire(): truthy when allowed.",
    .tp_getset = result_getset,
    .tp_repr = (reprfunc)result_repr,
    .tp_as_number = &result_as_number,
};

/* ---- Decision ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD rl_decision d;
} DecisionObject;

static PyTypeObject DecisionType;

static const rl_layer *limiting(const DecisionObject *self)
{
    if (self->d.limiting < 0 || (size_t)self->d.limiting >= self->d.n)
        return NULL;
    return &self->d.layers[self->d.limiting];
}

static PyObject *decision_get(DecisionObject *self, void *which)
{
    const rl_layer *l = limiting(self);
    switch ((intptr_t)which) {
    case 0:
        return PyBool_FromLong(self->d.allowed);
    case 1:
        return PyBool_FromLong(self->d.bypassed);
    case 2:
        return PyBool_FromLong(self->d.disabled);
    case 3:
        if (!l)
            Py_RETURN_NONE;
        return PyLong_FromUnsignedLongLong(l->limit);
    case 4:
        if (!l)
            Py_RETURN_NONE;
        return PyLong_FromUnsignedLongLong(l->remaining);
    case 5:
        return ms_to_s(l ? l->retry_after_ms : 0);
    case 6:
        return ms_to_s(l ? l->reset_after_ms : 0);
    case 7: {
        for (size_t i = 0; i < self->d.n; i++)
            if (self->d.layers[i].mode == RL_MODE_STRICT)
                Py_RETURN_TRUE;
        Py_RETURN_FALSE;
    }
    case 8:
        return PyLong_FromUnsignedLongLong(self->d.config_generation);
    default:
        if (!l)
            Py_RETURN_NONE;
        return PyUnicode_FromString(rl_scope_name(l->scope));
    }
}

static PyObject *decision_layers(DecisionObject *self, PyObject *unused)
{
    (void)unused;
    PyObject *list = PyList_New((Py_ssize_t)self->d.n);
    if (!list)
        return NULL;
    for (size_t i = 0; i < self->d.n; i++) {
        const rl_layer *l = &self->d.layers[i];
        PyObject *item = Py_BuildValue(
            "{s:O,s:K,s:K,s:K,s:K,s:K,s:s,s:s,s:s,s:O,s:O,s:s,s:s}", "allowed",
            l->allowed ? Py_True : Py_False, "limit", (unsigned long long)l->limit, "remaining",
            (unsigned long long)l->remaining, "retry_after_ms",
            (unsigned long long)l->retry_after_ms, "reset_after_ms",
            (unsigned long long)l->reset_after_ms, "window_ms", (unsigned long long)l->window_ms,
            "scope", rl_scope_name(l->scope), "algorithm", rl_algorithm_name(l->algorithm), "mode",
            mode_name((int)l->mode), "shadow", l->shadow ? Py_True : Py_False, "warning",
            l->warning ? Py_True : Py_False, "rule", l->rule, "name", l->name);
        if (!item) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* headers(raw=False): {"X-RateLimit-Limit": "100", ...}; raw=True: [(b"x-ratelimit-limit",
 * b"100"), ...] as ASGI wants them (lower-case names). */
static PyObject *decision_headers(DecisionObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"raw", "ietf", NULL};
    int raw = 0, ietf = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|pp:headers", kwlist, &raw, &ietf))
        return NULL;
    char buf[2048];
    unsigned flags = RL_HEADERS_LEGACY | (ietf ? RL_HEADERS_IETF : 0u);
    int n = rl_format_headers_ex(&self->d, flags, buf, sizeof buf);
    if (n < 0)
        return raise_rl(n, "headers");
    PyObject *out = raw ? PyList_New(0) : PyDict_New();
    if (!out)
        return NULL;
    char *p = buf, *end = buf + n;
    while (p < end) {
        char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol)
            eol = end;
        char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) {
            char *v = colon + 1;
            while (v < eol && *v == ' ')
                v++;
            PyObject *k, *val;
            int rc;
            if (raw) {
                for (char *c = p; c < colon; c++)
                    if (*c >= 'A' && *c <= 'Z')
                        *c = (char)(*c - 'A' + 'a');
                k = PyBytes_FromStringAndSize(p, colon - p);
                val = PyBytes_FromStringAndSize(v, eol - v);
                PyObject *t = (k && val) ? PyTuple_Pack(2, k, val) : NULL;
                rc = t ? PyList_Append(out, t) : -1;
                Py_XDECREF(t);
            } else {
                k = PyUnicode_FromStringAndSize(p, colon - p);
                val = PyUnicode_FromStringAndSize(v, eol - v);
                rc = (k && val) ? PyDict_SetItem(out, k, val) : -1;
            }
            Py_XDECREF(k);
            Py_XDECREF(val);
            if (rc < 0) {
                Py_DECREF(out);
                return NULL;
            }
        }
        p = eol + 2;
    }
    return out;
}

/* body(): the 429 JSON body ({"error": "rate_limited", ...}) as str. */
static PyObject *decision_body(DecisionObject *self, PyObject *unused)
{
    (void)unused;
    char buf[1024];
    int n = rl_format_body(&self->d, buf, sizeof buf);
    if (n < 0)
        return raise_rl(n, "body");
    return PyUnicode_FromStringAndSize(buf, n);
}

static int decision_bool(DecisionObject *self)
{
    return self->d.allowed;
}

static PyObject *decision_repr(DecisionObject *self)
{
    const rl_layer *l = limiting(self);
    return PyUnicode_FromFormat("Decision(allowed=%s, bypassed=%s, layers=%zu, limit=%llu, "
                                "remaining=%llu, rule='%s')",
                                self->d.allowed ? "True" : "False",
                                self->d.bypassed ? "True" : "False", self->d.n,
                                l ? (unsigned long long)l->limit : 0ull,
                                l ? (unsigned long long)l->remaining : 0ull, l ? l->rule : "");
}

static PyGetSetDef decision_getset[] = {
    {"allowed", (getter)decision_get, NULL, "True unless a non-shadow layer denied.", (void *)0},
    {"bypassed", (getter)decision_get, NULL, "On the bypass list.", (void *)1},
    {"disabled", (getter)decision_get, NULL, "Rate limiting is disabled.", (void *)2},
    {"limit", (getter)decision_get, NULL, "The limiting layer's limit (None: no layer).",
     (void *)3},
    {"remaining", (getter)decision_get, NULL, "The limiting layer's remaining.", (void *)4},
    {"retry_after", (getter)decision_get, NULL, "Seconds to wait (0.0 when allowed).", (void *)5},
    {"reset_after", (getter)decision_get, NULL, "Seconds until the limiting layer is full.",
     (void *)6},
    {"strict", (getter)decision_get, NULL, "A layer of this request is STRICT (Redis).", (void *)7},
    {"config_generation", (getter)decision_get, NULL, "The rule set's generation.", (void *)8},
    {"scope", (getter)decision_get, NULL, "The limiting layer's scope name.", (void *)9},
    {NULL},
};

static PyMethodDef decision_methods[] = {
    {"headers", (PyCFunction)(void (*)(void))decision_headers, METH_VARARGS | METH_KEYWORDS,
     "headers(raw=False, ietf=False): the X-RateLimit-* headers (and Retry-After when denied)."},
    {"body", (PyCFunction)decision_body, METH_NOARGS, "body(): the JSON body of a 429 answer."},
    {"layers", (PyCFunction)decision_layers, METH_NOARGS, "layers(): each layer's answer."},
    {NULL},
};

static PyNumberMethods decision_as_number = {.nb_bool = (inquiry)decision_bool};

static PyTypeObject DecisionType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rl.Decision",
    .tp_basicsize = sizeof(DecisionObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The answer to one check(): truthy when allowed.",
    .tp_getset = decision_getset,
    .tp_methods = decision_methods,
    .tp_repr = (reprfunc)decision_repr,
    .tp_as_number = &decision_as_number,
};

/* ---- Handle ------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD rl_t *rl;
    rl_options o;
    PyObject *strs; /* keeps the option strings alive (a tuple) */
    int from_env;   /* apply rl_options_from_env() before the explicit options */
    int closed;     /* close() was called */
    long busy;      /* calls running without the GIL (guarded by the GIL) */
    pid_t busy_pid; /* the process busy counts in (a forked child inherits none of them) */
    int redis;      /* opened with a redis_url */
    PyObject *weak; /* weakref list (rl.asgi keeps weak references) */
    PyObject *dict; /* subclass attributes */
} HandleObject;

/* The handle, opening it at its first use (with the GIL: opening blocks only while another
 * process initialises the same new segment, at most ~5 s, once). NULL with an exception. */
static rl_t *handle_get(HandleObject *self)
{
    /* closed first: after close() while a call runs without the GIL, self->rl stays set until
     * that call ends (handle_release), but no new call may start on it. */
    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "rl: operation on a closed Limiter");
        return NULL;
    }
    if (self->rl)
        return self->rl;
    rl_options o = self->o;
    if (self->from_env) {
        /* The environment first, then what the constructor was given wins. */
        rl_options e;
        rl_options_init(&e);
        int rc = rl_options_from_env(&e);
        if (rc < 0)
            return (rl_t *)raise_rl(rc, "environment");
        rl_options d;
        rl_options_init(&d);
#define PICK(f)                                                                                    \
    if (memcmp(&o.f, &d.f, sizeof o.f) == 0)                                                       \
    o.f = e.f
        PICK(shm_name);
        PICK(config_path);
        PICK(environment);
        PICK(enabled);
        PICK(redis_url);
        PICK(redis_pool_size);
        PICK(monitoring);
        PICK(metrics_retention_days);
        PICK(sync_interval_ms);
        PICK(fallback);
        PICK(cluster_hosts);
        PICK(host_id);
#undef PICK
    }
    rl_t *rl = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = rl_open(&rl, &o);
    Py_END_ALLOW_THREADS;
    if (rc < 0) /* the open ran on this OS thread: rl_errmsg() has its message */
        return (rl_t *)raise_rl(rc, "rl.Limiter open");
    if (self->rl || self->closed) {           /* another thread opened or closed it meanwhile */
        Py_BEGIN_ALLOW_THREADS rl_close(&rl); /* as in handle_dealloc */
        Py_END_ALLOW_THREADS;
        /* Only close() clears self->rl, and it sets closed first. */
        if (self->closed || !self->rl) {
            PyErr_SetString(PyExc_ValueError, "rl: operation on a closed Limiter");
            return NULL;
        }
        return self->rl;
    }
    self->rl = rl;
    self->redis = o.redis_url != NULL && *o.redis_url;
    return rl;
}

/* The calls running without the GIL in this process: after fork() the child has only the
 * forking thread, so what the parent's other threads were running is not the child's (it
 * would defer the child's close() for ever). */
static long handle_busy(HandleObject *self)
{
    if (self->busy && self->busy_pid != getpid())
        self->busy = 0;
    return self->busy;
}

/* Before a call that releases the GIL (handle_release() after it). */
static void handle_enter(HandleObject *self)
{
    handle_busy(self);
    self->busy_pid = getpid();
    self->busy++;
}

static void handle_release(HandleObject *self)
{
    if (--self->busy == 0 && self->closed && self->rl) {
        rl_t *rl = self->rl;
        self->rl = NULL;
        Py_BEGIN_ALLOW_THREADS rl_close(&rl);
        Py_END_ALLOW_THREADS;
    }
}

/* An optional string option: absent or None keeps rl_options_init()'s default (so that
 * rl_options_from_env() may fill it). Returns the object to keep alive, NULL on error. */
static PyObject *opt_str(PyObject *v, const char *name, const char **dst)
{
    const char *s;
    if (arg_str(v, name, &s) < 0)
        return NULL;
    if (s)
        *dst = s;
    return v ? v : Py_None;
}

static int handle_init(HandleObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"shm",
                             "config",
                             "redis_url",
                             "environment",
                             "capacity",
                             "enabled",
                             "fallback",
                             "sync_interval_ms",
                             "redis_pool_size",
                             "redis_connect_timeout_ms",
                             "redis_command_timeout_ms",
                             "host_id",
                             "cluster_hosts",
                             "no_sync",
                             "no_stats",
                             "create",
                             "from_env",
                             "monitoring",
                             NULL};
    PyObject *shm = NULL, *config = NULL, *redis_url = NULL, *environment = NULL, *capacity = NULL,
             *enabled = NULL, *fallback = NULL, *sync_ms = NULL, *pool = NULL, *cto = NULL,
             *rto = NULL, *host_id = NULL, *hosts = NULL;
    int no_sync = 0, no_stats = 0, create = 1, from_env = 1, monitoring = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOOOOOOOOOOOOppppi:Limiter", kwlist, &shm, &config,
                                     &redis_url, &environment, &capacity, &enabled, &fallback,
                                     &sync_ms, &pool, &cto, &rto, &host_id, &hosts, &no_sync,
                                     &no_stats, &create, &from_env, &monitoring))
        return -1;
    /* Once: the options point into self->strs, which a second __init__ would free under an
     * rl_open() running without the GIL on another thread (handle_get). */
    if (self->rl || self->closed || self->strs) {
        PyErr_SetString(PyExc_RuntimeError, "rl.Limiter: __init__ called twice");
        return -1;
    }
    rl_options_init(&self->o);
    PyObject *keep[4];
    if (!(keep[0] = opt_str(shm, "shm", &self->o.shm_name)) ||
        !(keep[1] = opt_str(config, "config", &self->o.config_path)) ||
        !(keep[2] = opt_str(redis_url, "redis_url", &self->o.redis_url)) ||
        !(keep[3] = opt_str(environment, "environment", &self->o.environment)))
        return -1;
    const char *hid = NULL;
    if (arg_str(host_id, "host_id", &hid) < 0)
        return -1;
    self->o.host_id = hid;
    if (self->o.shm_name && self->o.shm_name[0] != '/') {
        PyErr_Format(InvalidArgument,
                     "shm: '%s' must start with '/' (then 1..200 of [A-Za-z0-9._-]), e.g. "
                     "'/rl-myapp'",
                     self->o.shm_name);
        return -1;
    }
    uint64_t v = 0;
    if (capacity) {
        if (arg_u64(capacity, "capacity", &v) < 0)
            return -1;
        if (capacity != Py_None)
            self->o.capacity = (size_t)v;
    }
    if (enabled && enabled != Py_None) {
        int t = PyObject_IsTrue(enabled);
        if (t < 0)
            return -1;
        self->o.enabled = t;
    }
    if (fallback && fallback != Py_None) {
        const char *f;
        if (arg_str(fallback, "fallback", &f) < 0)
            return -1;
        if (strcmp(f, "local") == 0)
            self->o.fallback = RL_FALLBACK_LOCAL;
        else if (strcmp(f, "open") == 0)
            self->o.fallback = RL_FALLBACK_OPEN;
        else if (strcmp(f, "closed") == 0)
            self->o.fallback = RL_FALLBACK_CLOSED;
        else {
            PyErr_Format(InvalidArgument, "fallback: '%s' is not one of local, open, closed", f);
            return -1;
        }
    }
    if (arg_u64(sync_ms, "sync_interval_ms", &self->o.sync_interval_ms) < 0)
        return -1;
    if (arg_uint(pool, "redis_pool_size", &self->o.redis_pool_size) < 0 ||
        arg_uint(cto, "redis_connect_timeout_ms", &self->o.redis_connect_timeout_ms) < 0 ||
        arg_uint(rto, "redis_command_timeout_ms", &self->o.redis_command_timeout_ms) < 0)
        return -1;
    if (arg_u64(hosts, "cluster_hosts", &self->o.cluster_hosts) < 0)
        return -1;
    if (monitoring >= 0)
        self->o.monitoring = monitoring;
    self->o.flags = (no_sync ? RL_OPEN_NO_SYNC : 0u) | (no_stats ? RL_OPEN_NO_STATS : 0u) |
                    (create ? 0u : RL_OPEN_NOCREATE);
    self->from_env = from_env;
    Py_XSETREF(self->strs,
               PyTuple_Pack(5, keep[0], keep[1], keep[2], keep[3], host_id ? host_id : Py_None));
    return self->strs ? 0 : -1;
}

static void handle_dealloc(HandleObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weak)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (self->rl && handle_busy(self) == 0) {
        /* rl_close() joins the sync thread, which may be in a Redis round trip (up to the
         * command timeout): not with the GIL (nothing else can reach self any more). */
        rl_t *rl = self->rl;
        self->rl = NULL;
        Py_BEGIN_ALLOW_THREADS rl_close(&rl);
        Py_END_ALLOW_THREADS;
    }
    Py_CLEAR(self->strs);
    Py_CLEAR(self->dict);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int handle_traverse(HandleObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->dict);
    return 0;
}

static int handle_clear(HandleObject *self)
{
    Py_CLEAR(self->dict);
    return 0;
}

/* acquire(key, requests, window, burst=0, algorithm="token_bucket", cost=1, mode="local") */
static PyObject *handle_acquire(HandleObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    static const char *const names[] = {"key",       "requests", "window", "burst",
                                        "algorithm", "cost",     "mode"};
    PyObject *a[7];
    if (parse_args(args, nargs, kwnames, names, 7, 3, a, "acquire") < 0)
        return NULL;
    const char *key;
    Py_ssize_t keylen;
    if (arg_key(a[0], &key, &keylen) < 0)
        return NULL;
    rl_limit lim;
    memset(&lim, 0, sizeof lim);
    uint64_t cost = 1;
    if (arg_u64(a[1], "requests", &lim.requests) < 0 || arg_window(a[2], &lim.window_ms) < 0 ||
        arg_u64(a[3], "burst", &lim.burst) < 0 || arg_u64(a[5], "cost", &cost) < 0)
        return NULL;
    if (a[4] && a[4] != Py_None) {
        int alg = parse_enum(a[4], alg_name, RL_ALGORITHM_COUNT, "algorithm");
        if (alg < 0)
            return NULL;
        lim.algorithm = (rl_algorithm)alg;
    }
    if (a[6] && a[6] != Py_None) {
        int m = parse_enum(a[6], mode_name, 3, "mode");
        if (m < 0)
            return NULL;
        lim.mode = (rl_mode)m;
    }
    rl_t *rl = handle_get(self);
    if (!rl)
        return NULL;
    ResultObject *res = PyObject_New(ResultObject, &ResultType);
    if (!res)
        return NULL;
    int rc;
    if (lim.mode == RL_MODE_STRICT && self->redis) {
        /* One Redis round trip, bounded by the command timeout: without the GIL. The key may
         * point into a str's cached UTF-8: the caller's reference keeps it alive. */
        handle_enter(self);
        Py_BEGIN_ALLOW_THREADS rc = rl_acquire(rl, key, (size_t)keylen, &lim, cost, &res->r);
        Py_END_ALLOW_THREADS;
        if (rc < 0)
            raise_rl(rc, "acquire");
        handle_release(self);
    } else {
        rc = rl_acquire(rl, key, (size_t)keylen, &lim, cost, &res->r);
        if (rc < 0)
            raise_rl(rc, "acquire");
    }
    if (rc < 0) {
        Py_DECREF(res);
        return NULL;
    }
    return (PyObject *)res;
}

/* reset(key, requests, window, burst=0, algorithm=..., mode=...) */
static PyObject *handle_reset(HandleObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    static const char *const names[] = {"key", "requests", "window", "burst", "algorithm", "mode"};
    PyObject *a[6];
    if (parse_args(args, nargs, kwnames, names, 6, 3, a, "reset") < 0)
        return NULL;
    const char *key;
    Py_ssize_t keylen;
    if (arg_key(a[0], &key, &keylen) < 0)
        return NULL;
    rl_limit lim;
    memset(&lim, 0, sizeof lim);
    if (arg_u64(a[1], "requests", &lim.requests) < 0 || arg_window(a[2], &lim.window_ms) < 0 ||
        arg_u64(a[3], "burst", &lim.burst) < 0)
        return NULL;
    if (a[4] && a[4] != Py_None) {
        int alg = parse_enum(a[4], alg_name, RL_ALGORITHM_COUNT, "algorithm");
        if (alg < 0)
            return NULL;
        lim.algorithm = (rl_algorithm)alg;
    }
    if (a[5] && a[5] != Py_None) {
        int m = parse_enum(a[5], mode_name, 3, "mode");
        if (m < 0)
            return NULL;
        lim.mode = (rl_mode)m;
    }
    rl_t *rl = handle_get(self);
    if (!rl)
        return NULL;
    int rc;
    handle_enter(self);
    Py_BEGIN_ALLOW_THREADS rc = rl_reset(rl, key, (size_t)keylen, &lim);
    if (rc < 0)
        key = rl_errmsg(); /* this thread's message, before handle_release() may close */
    Py_END_ALLOW_THREADS;
    PyObject *ret = NULL;
    if (rc < 0)
        raise_rl_msg(rc, "reset", key);
    else
        ret = Py_NewRef(Py_None);
    handle_release(self);
    return ret;
}

/* check(method, path, ip=None, user=None, tier=None, cost=1, nogil=False) -> Decision */
static PyObject *handle_check(HandleObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    static const char *const names[] = {"method", "path", "ip", "user", "tier", "cost", "nogil"};
    PyObject *a[7];
    if (parse_args(args, nargs, kwnames, names, 7, 2, a, "check") < 0)
        return NULL;
    rl_request req;
    memset(&req, 0, sizeof req);
    if (arg_str(a[0], "method", &req.method) < 0 || arg_str(a[1], "path", &req.path) < 0 ||
        arg_str(a[2], "ip", &req.ip) < 0 || arg_str(a[3], "user", &req.user) < 0 ||
        arg_str(a[4], "tier", &req.tier) < 0 || arg_u64(a[5], "cost", &req.cost) < 0)
        return NULL;
    int nogil = a[6] ? PyObject_IsTrue(a[6]) : 0;
    if (nogil < 0)
        return NULL;
    rl_t *rl = handle_get(self);
    if (!rl)
        return NULL;
    DecisionObject *d = PyObject_New(DecisionObject, &DecisionType);
    if (!d)
        return NULL;
    int rc;
    if (nogil) {
        const char *msg = NULL;
        handle_enter(self);
        Py_BEGIN_ALLOW_THREADS rc = rl_check(rl, &req, &d->d);
        if (rc < 0)
            msg = rl_errmsg();
        Py_END_ALLOW_THREADS;
        if (rc < 0)
            raise_rl_msg(rc, "check", msg);
        handle_release(self);
    } else {
        rc = rl_check(rl, &req, &d->d);
        if (rc < 0)
            raise_rl(rc, "check");
    }
    if (rc < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return (PyObject *)d;
}

static PyObject *handle_stats(HandleObject *self, PyObject *unused)
{
    (void)unused;
    rl_t *rl = handle_get(self);
    if (!rl)
        return NULL;
    rl_stats_info s;
    int rc = rl_stats(rl, &s);
    if (rc < 0)
        return raise_rl(rc, "stats");
    return Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "checks", (unsigned long long)s.checks, "allowed",
        (unsigned long long)s.allowed, "denied", (unsigned long long)s.denied, "bypassed",
        (unsigned long long)s.bypassed, "shadow_denied", (unsigned long long)s.shadow_denied,
        "table_full_open", (unsigned long long)s.table_full_open, "table_full_closed",
        (unsigned long long)s.table_full_closed, "warnings", (unsigned long long)s.warnings,
        "config_generation", (unsigned long long)s.config_generation);
}

static PyObject *handle_endpoint_stats(HandleObject *self, PyObject *unused)
{
    (void)unused;
    rl_t *rl = handle_get(self);
    if (!rl)
        return NULL;
    rl_endpoint_stats es[256];
    int n = rl_stats_endpoints(rl, es, 256);
    if (n < 0)
        return raise_rl(n, "endpoint_stats");
    if (n > 256)
        n = 256;
    PyObject *out = PyDict_New();
    if (!out)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *v = Py_BuildValue("{s:K,s:K}", "allowed", (unsigned long long)es[i].allowed,
                                    "denied", (unsigned long long)es[i].denied);
        if (!v || PyDict_SetItemString(out, es[i].endpoint, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(v);
    }
    return out;
}

/* health(): may block up to the command timeout (a PING): without the GIL. */
static PyObject *handle_health(HandleObject *self, PyObject *unused)
{
    (void)unused;
    rl_t *rl = handle_get(self);
    if (!rl)
        return NULL;
    rl_health_info h;
    int rc;
    handle_enter(self);
    Py_BEGIN_ALLOW_THREADS rc = rl_health(rl, &h);
    Py_END_ALLOW_THREADS;
    if (rc < 0) /* this OS thread made the call: its message is still there */
        raise_rl(rc, "health");
    handle_release(self);
    if (rc < 0)
        return NULL;
    long long age = h.last_sync_age_ms == UINT64_MAX ? -1 : (long long)h.last_sync_age_ms;
    return Py_BuildValue(
        "{s:O,s:O,s:O,s:K,s:K,s:K,s:i,s:L,s:s,s:K,s:K,s:O,s:O,s:s}", "redis_configured",
        h.redis_configured ? Py_True : Py_False, "connected", h.connected ? Py_True : Py_False,
        "breaker_open", h.breaker_open ? Py_True : Py_False, "strict_checks",
        (unsigned long long)h.strict_checks, "strict_fallbacks",
        (unsigned long long)h.strict_fallbacks, "sync_rounds", (unsigned long long)h.sync_rounds,
        "leader_pid", (int)h.leader_pid, "last_sync_age_ms", age, "error", h.error, "sync_errors",
        (unsigned long long)h.sync_errors, "cluster_hosts", (unsigned long long)h.cluster_hosts,
        "global_fallback", h.global_fallback ? Py_True : Py_False, "sync_leader_here",
        h.sync_leader_here ? Py_True : Py_False, "warning", h.warning);
}

static PyObject *handle_config_dump(HandleObject *self, PyObject *unused)
{
    (void)unused;
    rl_t *rl = handle_get(self);
    if (!rl)
        return NULL;
    char small[8192];
    long n = rl_config_dump(rl, small, sizeof small);
    if (n < 0)
        return raise_rl((int)n, "config_dump");
    if ((size_t)n < sizeof small)
        return PyUnicode_FromStringAndSize(small, n);
    char *big = PyMem_Malloc((size_t)n + 1);
    if (!big)
        return PyErr_NoMemory();
    long m = rl_config_dump(rl, big, (size_t)n + 1);
    PyObject *s =
        m < 0 ? raise_rl((int)m, "config_dump") : PyUnicode_FromStringAndSize(big, m > n ? n : m);
    PyMem_Free(big);
    return s;
}

static PyObject *handle_load_config(HandleObject *self, PyObject *arg)
{
    const char *path;
    if (arg_str(arg, "path", &path) < 0)
        return NULL;
    if (!path)
        return PyErr_Format(PyExc_TypeError, "load_config: path must be a str");
    rl_t *rl = handle_get(self);
    if (!rl)
        return NULL;
    /* Control plane: reads a file and may wait ~2 s for another process's writer lock. */
    int rc;
    handle_enter(self);
    Py_BEGIN_ALLOW_THREADS rc = rl_load_config(rl, path);
    Py_END_ALLOW_THREADS;
    if (rc < 0)
        raise_rl(rc, "load_config");
    handle_release(self);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* configure_endpoint(pattern, [dict(requests=, window=, burst=, algorithm=, scope=, mode=,
 * name=), ...]) */
static PyObject *handle_configure_endpoint(HandleObject *self, PyObject *args)
{
    const char *pattern;
    PyObject *layers;
    if (!PyArg_ParseTuple(args, "sO:configure_endpoint", &pattern, &layers))
        return NULL;
    PyObject *seq = PySequence_Fast(layers, "configure_endpoint: layers must be a list of dicts");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > RL_MAX_LAYERS) {
        Py_DECREF(seq);
        return PyErr_Format(InvalidArgument, "configure_endpoint: %zd layers (1..%d)", n,
                            RL_MAX_LAYERS);
    }
    rl_limit lims[RL_MAX_LAYERS];
    memset(lims, 0, sizeof lims);
    /* The layer names point into str objects of the caller's dicts, which another thread may
     * change while the GIL is released below: hold them. */
    PyObject *names[RL_MAX_LAYERS] = {NULL};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyDict_Check(d)) {
            PyErr_Format(PyExc_TypeError, "configure_endpoint: layer %zd is not a dict", i);
            goto fail;
        }
        PyObject *r = PyDict_GetItemString(d, "requests"), *w = PyDict_GetItemString(d, "window");
        if (!r || !w) {
            PyErr_Format(InvalidArgument, "configure_endpoint: layer %zd needs requests and window",
                         i);
            goto fail;
        }
        PyObject *o;
        if (arg_u64(r, "requests", &lims[i].requests) < 0 ||
            arg_window(w, &lims[i].window_ms) < 0 ||
            arg_u64(PyDict_GetItemString(d, "burst"), "burst", &lims[i].burst) < 0)
            goto fail;
        if ((o = PyDict_GetItemString(d, "algorithm"))) {
            int x = parse_enum(o, alg_name, RL_ALGORITHM_COUNT, "algorithm");
            if (x < 0)
                goto fail;
            lims[i].algorithm = (rl_algorithm)x;
        }
        if ((o = PyDict_GetItemString(d, "scope"))) {
            int x = parse_enum(o, scope_name, RL_SCOPE_COUNT, "scope");
            if (x < 0)
                goto fail;
            lims[i].scope = (rl_scope)x;
        }
        if ((o = PyDict_GetItemString(d, "mode"))) {
            int x = parse_enum(o, mode_name, 3, "mode");
            if (x < 0)
                goto fail;
            lims[i].mode = (rl_mode)x;
        }
        names[i] = PyDict_GetItemString(d, "name");
        Py_XINCREF(names[i]);
        if (arg_str(names[i], "name", &lims[i].name) < 0)
            goto fail;
    }
    rl_t *rl = handle_get(self);
    if (!rl)
        goto fail;
    /* Control plane: may wait ~2 s for another process's writer lock. */
    int rc;
    handle_enter(self);
    Py_BEGIN_ALLOW_THREADS rc = rl_configure_endpoint(rl, pattern, lims, (size_t)n);
    Py_END_ALLOW_THREADS;
    if (rc < 0)
        raise_rl(rc, "configure_endpoint");
    handle_release(self);
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(names[i]);
    Py_DECREF(seq);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
fail:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(names[i]);
    Py_DECREF(seq);
    return NULL;
}

static PyObject *handle_bypass(HandleObject *self, PyObject *args)
{
    const char *op, *kind, *value = NULL;
    if (!PyArg_ParseTuple(args, "ss|z:bypass", &op, &kind, &value))
        return NULL;
    rl_bypass_kind k;
    if (strcmp(kind, "ip") == 0)
        k = RL_BYPASS_IP;
    else if (strcmp(kind, "user") == 0)
        k = RL_BYPASS_USER;
    else
        return PyErr_Format(InvalidArgument, "bypass: kind '%s' is not 'ip' or 'user'", kind);
    rl_t *rl = handle_get(self);
    if (!rl)
        return NULL;
    if (strcmp(op, "list") == 0) {
        /* rl_bypass_list() truncates to the buffer and returns the length the whole list needs:
         * a longer list is asked for again with room for it (it may grow meanwhile). */
        char small[4096], *buf = small;
        size_t cap = sizeof small;
        for (;;) {
            long n = rl_bypass_list(rl, k, buf, cap);
            if (n < 0 || (size_t)n < cap) {
                PyObject *s =
                    n < 0 ? raise_rl((int)n, "bypass list") : PyUnicode_FromStringAndSize(buf, n);
                if (buf != small)
                    PyMem_Free(buf);
                return s;
            }
            if (buf != small)
                PyMem_Free(buf);
            cap = (size_t)n + 1;
            if (!(buf = PyMem_Malloc(cap)))
                return PyErr_NoMemory();
        }
    }
    if (!value)
        return PyErr_Format(PyExc_TypeError, "bypass %s: needs a value", op);
    int add = strcmp(op, "add") == 0;
    if (!add && strcmp(op, "remove") != 0)
        return PyErr_Format(InvalidArgument, "bypass: unknown operation '%s'", op);
    /* Control plane: may wait ~2 s for another process's writer lock. */
    int rc;
    handle_enter(self);
    Py_BEGIN_ALLOW_THREADS rc = add ? rl_bypass_add(rl, k, value) : rl_bypass_remove(rl, k, value);
    Py_END_ALLOW_THREADS;
    if (rc < 0)
        raise_rl(rc, "bypass");
    handle_release(self);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *handle_close(HandleObject *self, PyObject *unused)
{
    (void)unused;
    self->closed = 1;
    if (self->rl && handle_busy(self) == 0) {
        rl_t *rl = self->rl;
        self->rl = NULL;
        Py_BEGIN_ALLOW_THREADS rl_close(&rl);
        Py_END_ALLOW_THREADS;
    }
    Py_RETURN_NONE;
}

static PyObject *handle_open(HandleObject *self, PyObject *unused)
{
    (void)unused;
    if (!handle_get(self))
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *handle_get_attr(HandleObject *self, void *which)
{
    switch ((intptr_t)which) {
    case 0:
        return PyBool_FromLong(self->rl != NULL);
    case 1:
        return PyBool_FromLong(self->closed);
    case 2: {
        /* Before the first use too: the middleware and acquire_async() decide by it whether a
         * check may wait on Redis, and the very first one (which opens) must not go inline on
         * the event loop because REDIS_URL came from the environment, not the constructor. */
        if (self->rl)
            return PyBool_FromLong(self->redis);
        if (self->o.redis_url && *self->o.redis_url)
            Py_RETURN_TRUE;
        if (!self->from_env)
            Py_RETURN_FALSE;
        rl_options e;
        rl_options_init(&e);
        (void)rl_options_from_env(&e); /* an invalid variable fails at open, with its message */
        return PyBool_FromLong(e.redis_url && *e.redis_url);
    }
    default: /* the name given to the constructor ("" when RL_SHM or the default applies) */
        if (self->strs && PyTuple_GET_ITEM(self->strs, 0) != Py_None)
            return Py_NewRef(PyTuple_GET_ITEM(self->strs, 0));
        return PyUnicode_FromString("");
    }
}

static PyGetSetDef handle_getset[] = {
    {"opened", (getter)handle_get_attr, NULL, "The segment is attached (in this process).",
     (void *)0},
    {"closed", (getter)handle_get_attr, NULL, "close() was called.", (void *)1},
    {"redis_configured", (getter)handle_get_attr, NULL,
     "Opened (or to be opened) with a Redis URL.", (void *)2},
    {"shm", (getter)handle_get_attr, NULL, "The segment name given ('' = RL_SHM or default).",
     (void *)3},
    {NULL},
};

static PyMethodDef handle_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))handle_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(key, requests, window, burst=0, algorithm='token_bucket', cost=1, mode='local')\n"
     "Takes `cost` units for `key` under the limit `requests` per `window` seconds; returns a\n"
     "Result. LOCAL and GLOBAL never block; STRICT waits on Redis without the GIL."},
    {"check", (PyCFunction)(void (*)(void))handle_check, METH_FASTCALL | METH_KEYWORDS,
     "check(method, path, ip=None, user=None, tier=None, cost=1, nogil=False)\n"
     "Checks a request against the rule set; returns a Decision."},
    {"reset", (PyCFunction)(void (*)(void))handle_reset, METH_FASTCALL | METH_KEYWORDS,
     "reset(key, requests, window, burst=0, algorithm=..., mode=...): forgive a key."},
    {"stats", (PyCFunction)handle_stats, METH_NOARGS, "stats(): the segment's check counters."},
    {"endpoint_stats", (PyCFunction)handle_endpoint_stats, METH_NOARGS,
     "endpoint_stats(): {pattern: {allowed, denied}} over every process."},
    {"health", (PyCFunction)handle_health, METH_NOARGS,
     "health(): Redis health (PINGs: may block up to the command timeout, without the GIL)."},
    {"config_dump", (PyCFunction)handle_config_dump, METH_NOARGS,
     "config_dump(): the rule set as YAML."},
    {"load_config", (PyCFunction)handle_load_config, METH_O,
     "load_config(path): replace the rule set with a YAML file."},
    {"configure_endpoint", (PyCFunction)handle_configure_endpoint, METH_VARARGS,
     "configure_endpoint(pattern, layers): add or replace one rule."},
    {"_bypass", (PyCFunction)handle_bypass, METH_VARARGS, NULL},
    {"open", (PyCFunction)handle_open, METH_NOARGS,
     "open(): attach the segment now (it is otherwise attached at first use)."},
    {"close", (PyCFunction)handle_close, METH_NOARGS, "close(): detach (idempotent)."},
    {NULL},
};

static PyTypeObject HandleType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rl._rl.Handle",
    .tp_basicsize = sizeof(HandleObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A segment handle (use rl.Limiter).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)handle_init,
    .tp_dealloc = (destructor)handle_dealloc,
    .tp_traverse = (traverseproc)handle_traverse,
    .tp_clear = (inquiry)handle_clear,
    .tp_methods = handle_methods,
    .tp_getset = handle_getset,
    .tp_weaklistoffset = offsetof(HandleObject, weak),
    .tp_dictoffset = offsetof(HandleObject, dict),
};

/* ---- module functions --------------------------------------------------------------------- */

/* client_ip(peer, x_forwarded_for=None, trusted=()) -> str */
static PyObject *mod_client_ip(PyObject *m, PyObject *args, PyObject *kw)
{
    (void)m;
    static char *kwlist[] = {"peer", "x_forwarded_for", "trusted", NULL};
    const char *peer, *xff = NULL;
    PyObject *trusted = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|zO:client_ip", kwlist, &peer, &xff, &trusted))
        return NULL;
    const char *cidrs[64];
    size_t n = 0;
    PyObject *seq = NULL;
    if (trusted && (PyUnicode_Check(trusted) || PyBytes_Check(trusted))) {
        /* A str is a sequence too: its characters would be the CIDRs ("1", "0", "."). */
        return PyErr_Format(PyExc_TypeError,
                            "client_ip: trusted must be a list of CIDRs, not a %.20s: write "
                            "[%R]",
                            Py_TYPE(trusted)->tp_name, trusted);
    }
    if (trusted && trusted != Py_None) {
        seq = PySequence_Fast(trusted, "client_ip: trusted must be a sequence of str");
        if (!seq)
            return NULL;
        Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
        if (len > 64) {
            Py_DECREF(seq);
            return PyErr_Format(InvalidArgument, "client_ip: at most 64 trusted CIDRs (%zd)", len);
        }
        for (Py_ssize_t i = 0; i < len; i++) {
            if (arg_str(PySequence_Fast_GET_ITEM(seq, i), "trusted", &cidrs[n]) < 0 || !cidrs[n]) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "client_ip: trusted entries must be str");
                Py_DECREF(seq);
                return NULL;
            }
            n++;
        }
    }
    char out[64];
    int rc = rl_client_ip(peer, xff, cidrs, n, out, sizeof out);
    Py_XDECREF(seq);
    if (rc < 0)
        return raise_rl(rc, "client_ip");
    return PyUnicode_FromStringAndSize(out, rc);
}

/* decision_for(result, scope="ip", algorithm="token_bucket", rule="", window=0, name="")
 * -> Decision: a one-layer decision from an acquire() result, so that the seed's headers and
 * 429 body (rl_format_headers, rl_format_body) can be rendered for a per-route limit. */
static PyObject *mod_decision_for(PyObject *m, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames)
{
    (void)m;
    static const char *const names[] = {"result", "scope", "algorithm", "rule", "window", "name"};
    PyObject *a[6];
    if (parse_args(args, nargs, kwnames, names, 6, 1, a, "decision_for") < 0)
        return NULL;
    if (!PyObject_TypeCheck(a[0], &ResultType))
        return PyErr_Format(PyExc_TypeError, "decision_for: expected an rl.Result");
    const rl_result *r = &((ResultObject *)a[0])->r;
    int scope = 0, alg = 0;
    if (a[1] && a[1] != Py_None &&
        (scope = parse_enum(a[1], scope_name, RL_SCOPE_COUNT, "scope")) < 0)
        return NULL;
    if (a[2] && a[2] != Py_None &&
        (alg = parse_enum(a[2], alg_name, RL_ALGORITHM_COUNT, "algorithm")) < 0)
        return NULL;
    const char *rule = NULL, *name = NULL;
    uint64_t window_ms = 0;
    if (arg_str(a[3], "rule", &rule) < 0 || arg_str(a[5], "name", &name) < 0)
        return NULL;
    if (a[4] && a[4] != Py_None && arg_window(a[4], &window_ms) < 0)
        return NULL;
    DecisionObject *d = PyObject_New(DecisionObject, &DecisionType);
    if (!d)
        return NULL;
    memset(&d->d, 0, sizeof d->d);
    d->d.allowed = r->allowed;
    d->d.n = 1;
    d->d.limiting = 0;
    d->d.now_ns = rl_now_ns();
    rl_layer *l = &d->d.layers[0];
    l->allowed = r->allowed;
    l->limit = r->limit;
    l->remaining = r->remaining;
    l->retry_after_ms = r->retry_after_ms;
    l->reset_after_ms = r->reset_after_ms;
    l->window_ms = window_ms;
    l->scope = (rl_scope)scope;
    l->algorithm = (rl_algorithm)alg;
    snprintf(l->rule, sizeof l->rule, "%s", rule ? rule : "");
    snprintf(l->name, sizeof l->name, "%s", name ? name : "0");
    return (PyObject *)d;
}

static PyObject *mod_unlink(PyObject *m, PyObject *arg)
{
    (void)m;
    const char *name;
    if (arg_str(arg, "shm", &name) < 0 || !name)
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_TypeError, "unlink: needs a str");
    int rc = rl_unlink(name);
    if (rc == -ENOENT)
        Py_RETURN_FALSE;
    if (rc < 0)
        return raise_rl(rc, "unlink");
    Py_RETURN_TRUE;
}

static PyObject *mod_check_config_file(PyObject *m, PyObject *arg)
{
    (void)m;
    const char *path;
    if (arg_str(arg, "path", &path) < 0 || !path)
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_TypeError, "needs a str");
    int rc = rl_check_config_file(path);
    if (rc < 0)
        return raise_rl(rc, "check_config_file");
    Py_RETURN_NONE;
}

static PyObject *mod_version(PyObject *m, PyObject *unused)
{
    (void)m;
    (void)unused;
    return PyUnicode_FromString(rl_version());
}

static PyMethodDef module_methods[] = {
    {"client_ip", (PyCFunction)(void (*)(void))mod_client_ip, METH_VARARGS | METH_KEYWORDS,
     "client_ip(peer, x_forwarded_for=None, trusted=()): the client address (rl_client_ip)."},
    {"decision_for", (PyCFunction)(void (*)(void))mod_decision_for, METH_FASTCALL | METH_KEYWORDS,
     "decision_for(result, scope='ip', algorithm='token_bucket', rule='', window=None, name='')\n"
     "A one-layer Decision from an acquire() Result (for its headers() and body())."},
    {"unlink", (PyCFunction)mod_unlink, METH_O,
     "unlink(shm): remove a segment name; False when there was none."},
    {"check_config_file", (PyCFunction)mod_check_config_file, METH_O,
     "check_config_file(path): validate a YAML rule file (raises InvalidArgument)."},
    {"version", (PyCFunction)mod_version, METH_NOARGS, "version(): librl's version."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "rl._rl", "The C binding of librl (use the rl package).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__rl(void);
PyMODINIT_FUNC PyInit__rl(void)
{
    if (PyType_Ready(&ResultType) < 0 || PyType_Ready(&DecisionType) < 0 ||
        PyType_Ready(&HandleType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Error = PyErr_NewExceptionWithDoc("rl.Error",
                                      "An error from librl: .errno is the errno code, "
                                      ".strerror rl's message (what, where, what to do).",
                                      PyExc_OSError, NULL);
    PyObject *bases = Error ? PyTuple_Pack(2, Error, PyExc_ValueError) : NULL;
    InvalidArgument =
        bases ? PyErr_NewExceptionWithDoc("rl.InvalidArgument",
                                          "A bad argument or configuration (EINVAL, ERANGE, "
                                          "E2BIG); also a ValueError.",
                                          bases, NULL)
              : NULL;
    Py_XDECREF(bases);
    if (!InvalidArgument || PyModule_AddObjectRef(m, "Error", Error) < 0 ||
        PyModule_AddObjectRef(m, "InvalidArgument", InvalidArgument) < 0 ||
        PyModule_AddObjectRef(m, "Handle", (PyObject *)&HandleType) < 0 ||
        PyModule_AddObjectRef(m, "Result", (PyObject *)&ResultType) < 0 ||
        PyModule_AddObjectRef(m, "Decision", (PyObject *)&DecisionType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
