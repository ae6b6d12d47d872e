#include "multi.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "interrupt.h"
#include "trace.h"

enum { X_QUEUED, X_RUNNING, X_FINISHED };

typedef struct xfer {
    uint64_t id;
    int state;
    dv_http_req req;
    char *method, *url, *body;
    char **headers; /* NULL-terminated copies */
    dv_http_progress p;
    dv_http_try *t;
    CURL *easy;
    dv_http_resp resp;
    dv_error err;
    int rc;
    int timer;     /* a wait without a transfer: finishes at not_before, takes no slot */
    int launched;  /* tries launched (a refresh try included) */
    long auth_gen; /* the token generation the running try carries */
    long epoch;    /* the budget epoch the running try was launched in */
    double not_before;
    int orphan; /* cancelled while transfers were being driven: dropped once that ends */
    struct xfer *prev, *next;
} xfer;

#define POOL_MAX 64

struct dv_multi {
    dv_http *h;
    CURLM *cm;
    xfer *head, *tail;
    uint64_t next_id;
    int limit, user_cap, hint;
    int active, peak;
    long epoch; /* bumped at each halving: one halving per throttling episode */
    int successes;
    double pause_until;
    long requests, retries, throttled;
    double waited_s;
    CURL *pool[POOL_MAX];
    int npool;
    int driving; /* inside wait/kick: hooks run, so a cancel only marks its request */
    int orphans;
};

static void kick(dv_multi *m);
static void undrive(dv_multi *m);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cap_of(const dv_multi *m)
{
    int c = m->hint > 0 ? m->hint : DV_MULTI_DEFAULT;
    if (m->user_cap > 0 && m->user_cap < c) c = m->user_cap;
    if (m->hint <= 0 && m->user_cap > c) c = m->user_cap; /* no hint: the caller decides */
    if (c > DV_MULTI_MAX) c = DV_MULTI_MAX;
    return c < 1 ? 1 : c;
}

dv_multi *dv_multi_new(dv_http *h, int max_concurrency, dv_error *err)
{
    dv_multi *m = calloc(1, sizeof *m);
    if (!m || !(m->cm = curl_multi_init())) {
        free(m);
        dv_error_set(err, 0, "transport", "libcurl could not create a multi handle");
        return NULL;
    }
    m->h = h;
    m->next_id = 1;
    m->user_cap = max_concurrency > 0 ? max_concurrency : 0;
    m->limit = cap_of(m);
    /* Enough kept-alive connections for a full budget on HTTP/1.1 servers. */
    curl_multi_setopt(m->cm, CURLMOPT_MAXCONNECTS, (long)DV_MULTI_MAX + 8);
    curl_multi_setopt(m->cm, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return m;
}

static void xfer_free(xfer *x)
{
    if (!x) return;
    free(x->method);
    free(x->url);
    free(x->body);
    for (char **p = x->headers; p && *p; p++)
        free(*p);
    free(x->headers);
    dv_http_resp_free(&x->resp);
    free(x);
}

static void unlink_xfer(dv_multi *m, xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        m->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        m->tail = x->prev;
    x->prev = x->next = NULL;
}

void dv_multi_free(dv_multi *m)
{
    if (!m) return;
    while (m->head) {
        xfer *x = m->head;
        unlink_xfer(m, x);
        if (x->state == X_RUNNING) {
            curl_multi_remove_handle(m->cm, x->easy);
            dv_http_try_abort(x->t);
            curl_easy_cleanup(x->easy);
        }
        xfer_free(x);
    }
    for (int i = 0; i < m->npool; i++)
        curl_easy_cleanup(m->pool[i]);
    curl_multi_cleanup(m->cm);
    free(m);
}

void dv_multi_set_cap(dv_multi *m, int max_concurrency)
{
    m->user_cap = max_concurrency > 0 ? max_concurrency : 0;
    int cap = cap_of(m);
    if (m->limit > cap || m->epoch == 0) m->limit = cap;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        if (n) memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

uint64_t dv_multi_submit(dv_multi *m, const dv_http_req *req, dv_error *err)
{
    xfer *x = calloc(1, sizeof *x);
    size_t nh = 0;
    int oom = !x;
    if (x) {
        while (req->headers && req->headers[nh])
            nh++;
        x->method = dup_n(req->method, strlen(req->method));
        x->url = dup_n(req->url, strlen(req->url));
        if (req->body) x->body = dup_n(req->body, req->body_len);
        x->headers = calloc(nh + 1, sizeof *x->headers);
        oom = !x->method || !x->url || (req->body && !x->body) || !x->headers;
        for (size_t i = 0; !oom && i < nh; i++)
            oom = !(x->headers[i] = dup_n(req->headers[i], strlen(req->headers[i])));
    }
    if (oom) {
        xfer_free(x);
        dv_error_set(err, 0, "memory", "out of memory queueing a request");
        return 0;
    }
    x->req.method = x->method;
    x->req.url = x->url;
    x->req.headers = (const char *const *)x->headers;
    x->req.body = x->body;
    x->req.body_len = req->body ? req->body_len : 0;
    x->req.flags = req->flags;
    x->id = m->next_id++;
    x->state = X_QUEUED;
    x->prev = m->tail;
    if (m->tail)
        m->tail->next = x;
    else
        m->head = x;
    m->tail = x;
    /* Hooks may run while transfers move on: a cancel from one only marks its request. */
    m->driving++;
    kick(m);
    undrive(m);
    return x->id;
}

uint64_t dv_multi_submit_timer(dv_multi *m, double seconds, dv_error *err)
{
    xfer *x = calloc(1, sizeof *x);
    if (!x) {
        dv_error_set(err, 0, "memory", "out of memory queueing a wait");
        return 0;
    }
    x->timer = 1;
    x->not_before = now_s() + (seconds > 0 ? seconds : 0);
    x->id = m->next_id++;
    x->state = X_QUEUED;
    x->prev = m->tail;
    if (m->tail)
        m->tail->next = x;
    else
        m->head = x;
    m->tail = x;
    return x->id;
}

static xfer *find(const dv_multi *m, uint64_t id)
{
    for (xfer *x = m->head; x; x = x->next)
        if (x->id == id) return x;
    return NULL;
}

static void finish(xfer *x, int rc)
{
    x->state = X_FINISHED;
    x->rc = rc;
    if (rc == 0) dv_error_clear(&x->err);
}

/* Starts the next try of x; a token that cannot be had ends the request. */
static void launch(dv_multi *m, xfer *x)
{
    const char *token = NULL;
    dv_error_clear(&x->err);
    if (dv_http_wants_auth(m->h, &x->req) && !(token = dv_http_token(m->h, &x->req, 0, &x->err))) {
        finish(x, -1);
        return;
    }
    x->auth_gen = dv_http_auth_generation(m->h);
    CURL *e = m->npool ? m->pool[--m->npool] : curl_easy_init();
    if (!e) {
        dv_error_set(&x->err, 0, "transport", "libcurl could not create a handle");
        finish(x, -1);
        return;
    }
    x->t = dv_http_try_begin(m->h, e, &x->req, token, &x->p, &x->resp, &x->err);
    if (!x->t) {
        curl_easy_cleanup(e);
        finish(x, -1);
        return;
    }
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)x);
    if (curl_multi_add_handle(m->cm, e) != CURLM_OK) {
        dv_http_try_abort(x->t);
        x->t = NULL;
        curl_easy_cleanup(e);
        dv_error_set(&x->err, 0, "transport", "libcurl could not start a transfer");
        finish(x, -1);
        return;
    }
    x->easy = e;
    x->state = X_RUNNING;
    x->epoch = m->epoch;
    if (x->launched++) m->retries++;
    m->requests++;
    if (++m->active > m->peak) m->peak = m->active;
}

/* Starts queued requests while `slots` (the budget, or less), the pause and their backoffs
 * allow. */
static void launch_upto(dv_multi *m, double now, int slots)
{
    for (xfer *x = m->head; x; x = x->next)
        if (x->timer && x->state == X_QUEUED && x->not_before <= now) finish(x, 0);
    if (now < m->pause_until) return;
    for (xfer *x = m->head; x && m->active < slots; x = x->next)
        if (x->state == X_QUEUED && !x->timer && !x->orphan && x->not_before <= now) launch(m, x);
}

static void launch_ready(dv_multi *m, double now)
{
    launch_upto(m, now, m->limit);
}

/* Answers received but not yet taken by the caller (each holds its whole body). */
static int unclaimed(const dv_multi *m)
{
    int n = 0;
    for (const xfer *x = m->head; x; x = x->next)
        if (x->state == X_FINISHED && !x->timer) n++;
    return n;
}

static void note_hint(dv_multi *m, const dv_http_resp *r)
{
    const char *v = r->status ? dv_http_resp_header(r, "x-ms-dop-hint") : NULL;
    char *end;
    long hint;
    if (!v) return;
    hint = strtol(v, &end, 10);
    if (end == v || hint < 1 || hint == m->hint) return;
    m->hint = hint > DV_MULTI_MAX ? DV_MULTI_MAX : (int)hint;
    /* Start from the hint; after a throttling episode only ever come down to it. */
    if (m->epoch == 0 || m->limit > cap_of(m)) m->limit = cap_of(m);
}

static void on_done(dv_multi *m, xfer *x, CURLcode rc, double now)
{
    curl_multi_remove_handle(m->cm, x->easy);
    /* A try launched before the latest halving was refused for what the others did: a 429
     * to it does not use up one of its own tries. */
    x->p.spare_429 = x->epoch != m->epoch;
    dv_http_verdict v = dv_http_try_end(m->h, x->t, (int)rc, &x->p, &x->resp, &x->err);
    x->t = NULL;
    if (m->npool < POOL_MAX)
        m->pool[m->npool++] = x->easy;
    else
        curl_easy_cleanup(x->easy);
    x->easy = NULL;
    m->active--;
    note_hint(m, &x->resp);
    switch (v) {
    case DV_HTTP_DONE:
        finish(x, 0);
        if (m->limit < cap_of(m) && ++m->successes >= DV_MULTI_RECOVER_EVERY) {
            m->limit++;
            m->successes = 0;
            if (dv_http_opts(m->h)->trace) dv_trace_note("concurrency back up to %d", m->limit);
        }
        return;
    case DV_HTTP_FAILED:
        finish(x, -1);
        return;
    case DV_HTTP_REFRESH:
        /* Only the first transfer refused with a given token asks for a new one. */
        if (dv_http_auth_generation(m->h) == x->auth_gen) dv_auth_invalidate(dv_http_auth(m->h));
        x->state = X_QUEUED;
        x->not_before = 0;
        return;
    case DV_HTTP_RETRY:
        x->state = X_QUEUED;
        if (x->p.throttled) {
            double until = now + (double)x->p.wait_ms / 1000.0;
            m->throttled++;
            if (x->epoch == m->epoch) {
                int was = m->limit;
                m->limit = m->limit > 1 ? m->limit / 2 : 1;
                m->epoch++;
                m->successes = 0;
                if (dv_http_opts(m->h)->trace)
                    dv_trace_note("429: concurrency %d -> %d; every request waits %ld ms", was,
                                  m->limit, x->p.wait_ms);
            }
            if (until > m->pause_until) {
                m->waited_s += until - (m->pause_until > now ? m->pause_until : now);
                m->pause_until = until;
            }
            x->not_before = 0;
        } else {
            x->not_before = now + (double)x->p.wait_ms / 1000.0;
        }
        return;
    }
}

static void drain(dv_multi *m)
{
    CURLMsg *msg;
    int left;
    double now = now_s();
    while ((msg = curl_multi_info_read(m->cm, &left))) {
        xfer *x = NULL;
        if (msg->msg != CURLMSG_DONE) continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x) on_done(m, x, msg->data.result, now);
    }
}

/* Fills free slots and puts their requests on the wire at once (one non-blocking pass), so
 * that a slot freed while the caller is busy with an answer (decoding, writing a page) is not
 * left idle until its next wait. Answers the caller has not taken yet count against the
 * budget here: a caller slower than the server would otherwise pile up one whole answer per
 * queued request (a page of megabytes each) instead of at most one per slot. A wait, which
 * needs progress, launches up to the full budget. */
static void kick(dv_multi *m)
{
    int running = 0;
    launch_upto(m, now_s(), m->limit - unclaimed(m));
    if (m->active == 0) return;
    curl_multi_perform(m->cm, &running);
    drain(m);
    launch_upto(m, now_s(), m->limit - unclaimed(m));
}

/* 1 when one of ids is finished or unknown. */
static int any_done(const dv_multi *m, const uint64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const xfer *x = find(m, ids[i]);
        if (!x || x->state == X_FINISHED) return 1;
    }
    return n == 0;
}

/* How long nothing can start: until the pause ends or the earliest backoff expires. */
static long idle_ms(const dv_multi *m, double now)
{
    double soonest = -1, timer = -1;
    for (const xfer *x = m->head; x; x = x->next) {
        if (x->state != X_QUEUED) continue;
        if (x->timer) {
            if (timer < 0 || x->not_before < timer) timer = x->not_before;
        } else if (soonest < 0 || x->not_before < soonest) {
            soonest = x->not_before;
        }
    }
    if (soonest >= 0 && soonest < m->pause_until) soonest = m->pause_until;
    if (m->active >= m->limit) soonest = -1; /* a slot frees only when a transfer ends */
    if (timer >= 0 && (soonest < 0 || timer < soonest)) soonest = timer;
    if (soonest < 0) return 1000;
    double ms = (soonest - now) * 1000.0;
    if (ms <= 0) return 0;
    return ms > 1000 ? 1000 : (long)ms + 1;
}

/* Ctrl-C: requests not yet running end as interrupted; running transfers are aborted by
 * their progress callback (src/http.c) and end the same way. */
static void interrupt_queued(dv_multi *m)
{
    for (xfer *x = m->head; x; x = x->next) {
        if (x->state != X_QUEUED) continue;
        dv_error_set(&x->err, 0, "interrupted", "%s: interrupted",
                     x->req.method ? x->req.method : "a wait");
        finish(x, -1);
    }
}

static void wait_any(dv_multi *m, const uint64_t *ids, size_t n)
{
    for (;;) {
        int running = 0;
        long t, ct = -1;
        double now = now_s();
        if (dv_interrupted()) interrupt_queued(m);
        /* Answers already in are handed over before anything else is launched (see kick). */
        if (any_done(m, ids, n)) return;
        launch_ready(m, now);
        if (any_done(m, ids, n)) return;
        curl_multi_perform(m->cm, &running);
        drain(m);
        if (any_done(m, ids, n)) {
            kick(m);
            return;
        }
        now = now_s();
        t = idle_ms(m, now);
        curl_multi_timeout(m->cm, &ct);
        if (m->active > 0 && ct >= 0 && ct < t) t = ct;
        if (t == 0) continue;
        if (t > 100) t = 100; /* a Ctrl-C from another thread is noticed soon */
        if (m->active > 0) {
            curl_multi_poll(m->cm, NULL, 0, (int)t, NULL);
        } else {
            struct timespec ts = {t / 1000, (t % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
                ;
        }
    }
}

static void drop(dv_multi *m, xfer *x)
{
    unlink_xfer(m, x);
    if (x->state == X_RUNNING) {
        /* A transfer cut off halfway leaves its connection unusable: the handle goes too. */
        curl_multi_remove_handle(m->cm, x->easy);
        dv_http_try_abort(x->t);
        curl_easy_cleanup(x->easy);
        m->active--;
    }
    xfer_free(x);
}

/* Ends a round of driving: what was cancelled during it goes now. */
static void undrive(dv_multi *m)
{
    if (--m->driving > 0 || !m->orphans) return;
    m->orphans = 0;
    for (xfer *x = m->head, *next; x; x = next) {
        next = x->next;
        if (x->orphan) drop(m, x);
    }
}

void dv_multi_wait_any(dv_multi *m, const uint64_t *ids, size_t n)
{
    m->driving++;
    wait_any(m, ids, n);
    undrive(m);
}

void dv_multi_kick(dv_multi *m)
{
    m->driving++;
    if (dv_interrupted()) interrupt_queued(m);
    kick(m);
    undrive(m);
}

void dv_multi_cancel(dv_multi *m, uint64_t id)
{
    xfer *x = find(m, id);
    if (!x) return;
    if (m->driving) {
        x->orphan = 1;
        m->orphans = 1;
        return;
    }
    drop(m, x);
}

int dv_multi_wait(dv_multi *m, uint64_t id)
{
    if (!find(m, id)) return -1;
    dv_multi_wait_any(m, &id, 1);
    return 0;
}

int dv_multi_finished(const dv_multi *m, uint64_t id)
{
    const xfer *x = find(m, id);
    return x ? x->state == X_FINISHED : -1;
}

int dv_multi_result(dv_multi *m, uint64_t id, dv_http_resp *resp, dv_error *err)
{
    xfer *x = find(m, id);
    if (!x || x->state != X_FINISHED) return -2;
    unlink_xfer(m, x);
    *resp = x->resp;
    memset(&x->resp, 0, sizeof x->resp);
    *err = x->err;
    int rc = x->rc;
    xfer_free(x);
    return rc;
}

void dv_multi_stats_get(const dv_multi *m, dv_multi_stats *s)
{
    memset(s, 0, sizeof *s);
    s->requests = m->requests;
    s->retries = m->retries;
    s->throttled = m->throttled;
    s->waited_s = m->waited_s;
    s->concurrency = m->limit;
    s->cap = cap_of(m);
    s->hint = m->hint;
    s->in_flight = m->active;
    s->peak = m->peak;
    for (const xfer *x = m->head; x; x = x->next)
        if (x->state == X_QUEUED && !x->timer)
            s->queued++;
        else if (x->state == X_FINISHED && !x->timer)
            s->held++;
}
