#include "limits.h"

#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A ring of (time, amount) entries inside the sliding window. */
typedef struct ring {
    double *t;
    double *v;
    size_t cap, head, n;
    double sum;
} ring;

struct emu_guard {
    emu_guard_opts o;
    pthread_mutex_t mu;
    ring reqs; /* admission times */
    ring exec; /* completion times and execution ms */
    int active, peak;
    long requests, throttled;
    double busy_ms;
    double lock_wait_ms;
    double latency_ms;
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ring_init(ring *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    r->cap = cap ? cap : 1;
    r->t = calloc(r->cap, sizeof *r->t);
    r->v = calloc(r->cap, sizeof *r->v);
    return r->t && r->v ? 0 : -1;
}

static void ring_pop(ring *r)
{
    r->sum -= r->v[r->head];
    r->head = (r->head + 1) % r->cap;
    r->n--;
    if (r->n == 0) r->sum = 0; /* no drift from repeated float subtraction */
}

static void ring_push(ring *r, double t, double v)
{
    if (r->n == r->cap) ring_pop(r);
    size_t i = (r->head + r->n) % r->cap;
    r->t[i] = t;
    r->v[i] = v;
    r->n++;
    r->sum += v;
}

static void ring_expire(ring *r, double before)
{
    while (r->n && r->t[r->head] <= before)
        ring_pop(r);
}

emu_guard *emu_guard_new(const emu_guard_opts *opt)
{
    emu_guard *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    if (opt) g->o = *opt;
    if (g->o.requests <= 0) g->o.requests = EMU_LIMIT_REQUESTS;
    if (g->o.execution_ms <= 0) g->o.execution_ms = EMU_LIMIT_EXECUTION_MS;
    if (g->o.concurrent <= 0) g->o.concurrent = EMU_LIMIT_CONCURRENT;
    if (g->o.window_s <= 0) g->o.window_s = EMU_LIMIT_WINDOW_S;
    if (g->o.dop_hint <= 0) g->o.dop_hint = EMU_DOP_HINT;
    pthread_mutex_init(&g->mu, NULL);
    if (g->o.limits) {
        /* Admitted requests in a window never exceed the request limit; completions inside
         * it can add those still in flight. */
        size_t cap = (size_t)g->o.requests;
        if (ring_init(&g->reqs, cap) || ring_init(&g->exec, cap + (size_t)g->o.concurrent + 1)) {
            emu_guard_free(g);
            return NULL;
        }
    }
    return g;
}

void emu_guard_free(emu_guard *g)
{
    if (!g) return;
    free(g->reqs.t), free(g->reqs.v), free(g->exec.t), free(g->exec.v);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static int set_num(const char *key, const char *val, double *out, char *err, size_t errlen)
{
    char *end;
    double d = strtod(val, &end);
    if (end == val || *end || !(d >= 0) || isinf(d)) {
        snprintf(err, errlen, "'%s' wants a number of 0 or more, got '%s'", key, val);
        return -1;
    }
    *out = d;
    return 0;
}

int emu_guard_parse(const char *spec, int latency, emu_guard_opts *o, char *err, size_t errlen)
{
    char buf[512];
    if (strlen(spec) >= sizeof buf) {
        snprintf(err, errlen, "the list is too long");
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *part = strtok_r(buf, ",", &save); part;
         part = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(part, '=');
        double d;
        if (!eq) {
            snprintf(err, errlen, "'%s' is not key=value", part);
            return -1;
        }
        *eq = 0;
        if (set_num(part, eq + 1, &d, err, errlen)) return -1;
        if (latency && strcmp(part, "request_ms") == 0) {
            o->latency.request_ms = d;
        } else if (latency && strcmp(part, "per_row_ms") == 0) {
            o->latency.per_row_ms = d;
        } else if (!latency && strcmp(part, "requests") == 0 && d >= 1) {
            o->requests = (long)d;
        } else if (!latency && strcmp(part, "execution_ms") == 0 && d >= 1) {
            o->execution_ms = (long)d;
        } else if (!latency && strcmp(part, "concurrent") == 0 && d >= 1) {
            o->concurrent = (int)d;
        } else if (!latency && strcmp(part, "window") == 0 && d > 0) {
            o->window_s = d;
        } else {
            snprintf(err, errlen, "unknown or out-of-range setting '%s' (known: %s)", part,
                     latency ? "request_ms, per_row_ms"
                             : "requests, execution_ms, concurrent, window (each at least 1)");
            return -1;
        }
    }
    return 0;
}

/* Seconds until the window has dropped enough of r for its sum to fall below limit (at
 * least 1: Retry-After is whole seconds). */
static long seconds_until_below(const ring *r, double limit, double now, double window)
{
    double sum = r->sum;
    for (size_t k = 0; k < r->n; k++) {
        size_t i = (r->head + k) % r->cap;
        sum -= r->v[i];
        if (sum < limit) {
            double s = r->t[i] + window - now;
            return s < 1 ? 1 : (long)ceil(s);
        }
    }
    return 1;
}

int emu_guard_enter(emu_guard *g, emu_ticket *t, emu_refusal *why)
{
    double now = mono_s();
    int refused = 0;
    t->start = now;
    t->locked = 0;
    pthread_mutex_lock(&g->mu);
    if (g->o.limits) {
        ring_expire(&g->reqs, now - g->o.window_s);
        ring_expire(&g->exec, now - g->o.window_s);
        if (g->active >= g->o.concurrent) {
            refused = 1;
            why->code = "0x80072326";
            snprintf(why->message, sizeof why->message,
                     "Number of concurrent requests exceeded the limit of %d.", g->o.concurrent);
            why->retry_after = 1;
        } else if ((long)g->reqs.n >= g->o.requests) {
            refused = 1;
            why->code = "0x80072322";
            snprintf(why->message, sizeof why->message,
                     "Number of requests exceeded the limit of %ld over time window of %g "
                     "seconds.",
                     g->o.requests, g->o.window_s);
            why->retry_after =
                seconds_until_below(&g->reqs, (double)g->o.requests, now, g->o.window_s);
        } else if (g->exec.sum >= (double)g->o.execution_ms) {
            char ms[32];
            long v = g->o.execution_ms;
            /* The documented message groups thousands: "1,200,000 milliseconds". */
            if (v >= 1000000)
                snprintf(ms, sizeof ms, "%ld,%03ld,%03ld", v / 1000000, v / 1000 % 1000, v % 1000);
            else if (v >= 1000)
                snprintf(ms, sizeof ms, "%ld,%03ld", v / 1000, v % 1000);
            else
                snprintf(ms, sizeof ms, "%ld", v);
            refused = 1;
            why->code = "0x80072321";
            snprintf(why->message, sizeof why->message,
                     "Combined execution time of incoming requests exceeded limit of %s "
                     "milliseconds over time window of %g seconds.",
                     ms, g->o.window_s);
            why->retry_after =
                seconds_until_below(&g->exec, (double)g->o.execution_ms, now, g->o.window_s);
        } else {
            ring_push(&g->reqs, now, 1);
        }
    }
    if (refused) {
        g->throttled++;
    } else {
        g->requests++;
        if (++g->active > g->peak) g->peak = g->active;
    }
    pthread_mutex_unlock(&g->mu);
    return refused;
}

void emu_guard_locked(emu_ticket *t)
{
    t->locked = mono_s();
}

void emu_guard_leave(emu_guard *g, const emu_ticket *t, const char *body, size_t len)
{
    double charged = emu_latency_wait(&g->o.latency, body, len);
    double now = mono_s();
    double ms = (now - t->start) * 1000.0;
    double wait_ms = t->locked > t->start ? (t->locked - t->start) * 1000.0 : 0;
    pthread_mutex_lock(&g->mu);
    g->active--;
    g->busy_ms += ms;
    g->lock_wait_ms += wait_ms;
    g->latency_ms += charged;
    if (g->o.limits) ring_push(&g->exec, now, ms);
    pthread_mutex_unlock(&g->mu);
}

void emu_guard_headers(emu_guard *g, struct MHD_Response *resp)
{
    char v[64];
    snprintf(v, sizeof v, "%d", g->o.dop_hint);
    MHD_add_response_header(resp, "x-ms-dop-hint", v);
    if (!g->o.limits) return;
    double now = mono_s();
    pthread_mutex_lock(&g->mu);
    ring_expire(&g->reqs, now - g->o.window_s);
    ring_expire(&g->exec, now - g->o.window_s);
    long burst = g->o.requests - (long)g->reqs.n;
    double left_ms = (double)g->o.execution_ms - g->exec.sum;
    pthread_mutex_unlock(&g->mu);
    snprintf(v, sizeof v, "%ld", burst < 0 ? 0 : burst);
    MHD_add_response_header(resp, "x-ms-ratelimit-burst-remaining-xrm-requests", v);
    /* Seconds with two decimals and grouped thousands, as the service writes it: "1,199.46". */
    long cents = left_ms > 0 ? (long)(left_ms / 10.0) : 0;
    long secs = cents / 100;
    if (secs >= 1000)
        snprintf(v, sizeof v, "%ld,%03ld.%02ld", secs / 1000, secs % 1000, cents % 100);
    else
        snprintf(v, sizeof v, "%ld.%02ld", secs, cents % 100);
    MHD_add_response_header(resp, "x-ms-ratelimit-time-remaining-xrm-requests", v);
}

void emu_guard_stats(emu_guard *g, dv_emulator_stats *s, int reset)
{
    pthread_mutex_lock(&g->mu);
    s->requests = g->requests;
    s->throttled = g->throttled;
    s->peak_concurrent = g->peak;
    s->concurrent = g->active;
    s->busy_ms = g->busy_ms;
    s->lock_wait_ms = g->lock_wait_ms;
    s->latency_ms = g->latency_ms;
    if (reset) {
        g->requests = g->throttled = 0;
        g->peak = g->active;
        g->busy_ms = g->lock_wait_ms = g->latency_ms = 0;
    }
    pthread_mutex_unlock(&g->mu);
}
