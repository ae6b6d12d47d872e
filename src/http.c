#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "urlsafe.h"
#include "interrupt.h"
#include "jscan.h"
#include "trace.h"
#include "version.h"

struct dv_http {
    CURL *curl;
    dv_http_options opt;
    char *user_agent;
    dv_auth *auth;
    uint64_t rng; /* jitter only; per object so that two connections share nothing */
    dv_http_event_fn on_event;
    void *event_ud;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void dv_http_options_init(dv_http_options *o)
{
    memset(o, 0, sizeof *o);
}

static long or_default(long v, long d)
{
    return v > 0 ? v : d;
}

static int env_trace(void)
{
    const char *t = getenv("DVLUA_TRACE");
    return t && *t && strcmp(t, "0") != 0;
}

dv_http *dv_http_new(const dv_http_options *o, dv_error *err)
{
    dv_http *h;
    dv_error_clear(err);
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        dv_error_set(err, 0, "transport", "libcurl could not be initialised: %s",
                     curl_easy_strerror(global_rc));
        return NULL;
    }
    h = calloc(1, sizeof *h);
    if (!h) {
        dv_error_set(err, 0, "memory", "out of memory creating an HTTP connection");
        return NULL;
    }
    if (o) h->opt = *o;
    h->opt.connect_timeout_ms = or_default(h->opt.connect_timeout_ms, 10000);
    h->opt.timeout_ms = or_default(h->opt.timeout_ms, 120000);
    h->opt.max_tries = (int)or_default(h->opt.max_tries, 5);
    h->opt.backoff_base_ms = or_default(h->opt.backoff_base_ms, 500);
    h->opt.backoff_cap_ms = or_default(h->opt.backoff_cap_ms, 30000);
    h->opt.trace = h->opt.trace || env_trace();
    h->user_agent = strdup(o && o->user_agent ? o->user_agent : "dvlua/" DV_VERSION);
    h->opt.user_agent = h->user_agent;
    h->curl = curl_easy_init();
    if (!h->curl || !h->user_agent) {
        dv_http_free(h);
        dv_error_set(err, 0, "transport", "libcurl could not create a handle");
        return NULL;
    }
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        h->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)h;
        if (!h->rng) h->rng = 0x9E3779B97F4A7C15ull;
    }
    return h;
}

void dv_http_free(dv_http *h)
{
    if (!h) return;
    if (h->curl) curl_easy_cleanup(h->curl);
    dv_auth_free(h->auth);
    free(h->user_agent);
    free(h);
}

void dv_http_set_auth(dv_http *h, dv_auth *a)
{
    if (h->auth != a) dv_auth_free(h->auth);
    h->auth = a;
}

void dv_http_set_events(dv_http *h, dv_http_event_fn fn, void *ud)
{
    h->on_event = fn;
    h->event_ud = ud;
}

dv_auth *dv_http_auth(dv_http *h)
{
    return h->auth;
}

/* ---- response collection ---- */

typedef struct collect {
    dv_http_resp *resp;
    size_t cap;
    size_t hcap;
    int failed; /* out of memory */
} collect;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    collect *c = ud;
    dv_http_resp *r = c->resp;
    size_t n = size * nmemb;
    if (r->body_len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        char *b;
        while (cap < r->body_len + n + 1)
            cap *= 2;
        b = realloc(r->body, cap);
        if (!b) {
            c->failed = 1;
            return 0;
        }
        r->body = b;
        c->cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = 0;
    return n;
}

static void free_headers(dv_http_resp *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    r->headers = NULL;
    r->nheaders = 0;
}

/* The body's whole size up front, when the server says it: a page of several megabytes is
 * then one allocation of its size, instead of a chain of doublings that leaves up to twice
 * the page allocated and the heap fragmented by every copy. Not trusted beyond 64 MB (a
 * compressed body only starts there and grows as usual). */
static void reserve_body(collect *c, const char *value)
{
    char *end;
    unsigned long long len = strtoull(value, &end, 10);
    if (end == value || *end || len == 0 || len > (64ULL << 20)) return;
    if (c->resp->body_len || c->cap >= len + 1) return;
    char *b = realloc(c->resp->body, (size_t)len + 1);
    if (!b) return; /* on_body tries again, and fails the transfer if it must */
    b[0] = 0;       /* a body that never comes (HEAD, 204) still reads as "" */
    c->resp->body = b;
    c->cap = (size_t)len + 1;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    collect *c = ud;
    dv_http_resp *r = c->resp;
    size_t n = size * nmemb, len = n;
    const char *colon;
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new status line (after 1xx or a retried connection): keep only the last block. */
        free_headers(r);
        c->hcap = 0;
        return n;
    }
    colon = memchr(data, ':', len);
    if (!colon || colon == data) return n;
    if (r->nheaders == c->hcap) {
        size_t cap = c->hcap ? c->hcap * 2 : 16;
        dv_http_header *hs = realloc(r->headers, cap * sizeof *hs);
        if (!hs) {
            c->failed = 1;
            return 0;
        }
        r->headers = hs;
        c->hcap = cap;
    }
    {
        size_t nlen = (size_t)(colon - data);
        const char *v = colon + 1;
        const char *vend = data + len;
        char *name, *value;
        while (v < vend && (*v == ' ' || *v == '\t'))
            v++;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        name = strndup(data, nlen);
        value = strndup(v, (size_t)(vend - v));
        if (!name || !value) {
            free(name);
            free(value);
            c->failed = 1;
            return 0;
        }
        r->headers[r->nheaders].name = name;
        r->headers[r->nheaders].value = value;
        r->nheaders++;
        if (strcasecmp(name, "Content-Length") == 0) reserve_body(c, value);
    }
    return n;
}

const char *dv_http_resp_header(const dv_http_resp *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0) return resp->headers[i].value;
    return NULL;
}

void dv_http_resp_free(dv_http_resp *resp)
{
    free(resp->body);
    free_headers(resp);
    memset(resp, 0, sizeof *resp);
}

static void resp_reset(dv_http_resp *resp)
{
    int tries = resp->tries;
    dv_http_resp_free(resp);
    resp->tries = tries;
}

/* ---- errors ---- */

/* "scheme://host[:port]/path" of url, without user info, query or fragment. */
static void url_for_message(const char *url, char *out, size_t outsz)
{
    const char *p = strstr(url, "://"), *host, *at, *end;
    size_t n;
    if (!p) {
        snprintf(out, outsz, "%.200s", url);
        out[strcspn(out, "?#")] = 0;
        return;
    }
    host = p + 3;
    end = host + strcspn(host, "/?#");
    at = memchr(host, '@', (size_t)(end - host));
    if (at) host = at + 1;
    n = (size_t)(p + 3 - url);
    snprintf(out, outsz, "%.*s%.*s%.*s", (int)n, url, (int)(end - host), host,
             (int)strcspn(end, "?#") > 200 ? 200 : (int)strcspn(end, "?#"), end);
}

/* Retry-After in seconds: delta-seconds or an HTTP date. Negative when absent or unreadable. */
static double parse_retry_after(const char *v)
{
    char *end;
    double d;
    if (!v || !*v) return -1;
    d = strtod(v, &end);
    if (end != v && *end == 0 && d >= 0) return d;
    {
        time_t t = curl_getdate(v, NULL);
        if (t == (time_t)-1) return -1;
        d = difftime(t, time(NULL));
        return d > 0 ? d : 0;
    }
}

static void set_request_id(const dv_http_resp *resp, dv_error *err)
{
    static const char *const names[] = {"x-ms-service-request-id", "REQ_ID",       "request-id",
                                        "x-ms-request-id",         "x-request-id", NULL};
    for (int i = 0; names[i]; i++) {
        const char *v = dv_http_resp_header(resp, names[i]);
        if (v && *v) {
            snprintf(err->request_id, sizeof err->request_id, "%s", v);
            return;
        }
    }
}

int dv_http_error_from_response(const dv_http_resp *resp, const char *method, const char *url,
                                dv_error *err)
{
    char code[sizeof err->code], msg[sizeof err->message], where[256];
    long cl = -1, ml = -1;
    dv_error_clear(err);
    url_for_message(url ? url : "", where, sizeof where);
    if (resp->body) {
        /* Dataverse: {"error":{"code":"0x…","message":"…"}}; OAuth: {"error":"…",
         * "error_description":"…"}. */
        cl = dv_jscan_string(resp->body, resp->body_len, "code", 2, code, sizeof code);
        ml = dv_jscan_string(resp->body, resp->body_len, "message", 2, msg, sizeof msg);
        if (cl < 0) cl = dv_jscan_string(resp->body, resp->body_len, "error", 1, code, sizeof code);
        if (ml < 0)
            ml = dv_jscan_string(resp->body, resp->body_len, "error_description", 1, msg,
                                 sizeof msg);
    }
    if (ml > 0)
        dv_error_set(err, resp->status, cl > 0 ? code : "http", "%s", msg);
    else
        dv_error_set(err, resp->status, cl > 0 ? code : "http", "%s %s answered HTTP %ld",
                     method ? method : "request", where, resp->status);
    err->retry_after = parse_retry_after(dv_http_resp_header(resp, "Retry-After"));
    set_request_id(resp, err);
    return -1;
}

/* ---- the retry policy ---- */

static int is_idempotent(const char *method)
{
    return strcasecmp(method, "GET") == 0 || strcasecmp(method, "HEAD") == 0 ||
           strcasecmp(method, "OPTIONS") == 0;
}

/* Statuses retried for any method: the server refused the request without acting on it. */
static int status_refused(long s)
{
    return s == 429 || s == 503;
}

/* Gateway statuses: for a non-idempotent request the origin may have acted on it. */
static int status_gateway(long s)
{
    return s == 502 || s == 504;
}

typedef enum { T_FATAL, T_NOT_SENT, T_MAYBE_SENT } transport_kind;

static transport_kind classify(CURLcode rc, int sent)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return T_NOT_SENT;
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return sent ? T_MAYBE_SENT : T_NOT_SENT;
    default:
        return T_FATAL;
    }
}

static uint64_t next_rand(dv_http *h)
{
    /* xorshift64*: enough for jitter. */
    h->rng ^= h->rng >> 12;
    h->rng ^= h->rng << 25;
    h->rng ^= h->rng >> 27;
    return h->rng * 0x2545F4914F6CDD1Dull;
}

/* Full jitter: a uniform wait in [0, min(cap, base * 2^retry)]. */
static long backoff_ms(dv_http *h, int retry)
{
    long cap = h->opt.backoff_cap_ms, ceil = h->opt.backoff_base_ms;
    for (int i = 0; i < retry && ceil < cap; i++)
        ceil *= 2;
    if (ceil > cap) ceil = cap;
    return (long)(next_rand(h) % (uint64_t)(ceil + 1));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Tells the hook about a try (kind "request") or a wait (kind "retry"). */
static void emit_event(dv_http *h, const char *kind, const dv_http_req *req,
                       const dv_http_resp *resp, double elapsed, double retry_after, long wait_ms,
                       const dv_error *err)
{
    if (!h->on_event) return;
    char url[1024];
    dv_trace_redact_text(req->url, strlen(req->url), url, sizeof url);
    dv_http_event ev = {kind,
                        req->method,
                        url,
                        resp->status,
                        resp->tries,
                        elapsed,
                        retry_after,
                        (double)wait_ms / 1000.0,
                        err && err->message[0] ? err->message : NULL};
    h->on_event(h->event_ud, &ev);
}

/* A transfer in progress ends (CURLE_ABORTED_BY_CALLBACK) once Ctrl-C was pressed. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)ud, (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return dv_interrupted();
}

static void append_note(dv_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void append_note(dv_error *err, const char *fmt, ...)
{
    size_t len = strlen(err->message);
    va_list ap;
    if (len >= sizeof err->message - 1) return;
    va_start(ap, fmt);
    vsnprintf(err->message + len, sizeof err->message - len, fmt, ap);
    va_end(ap);
}

/* ---- one try ---- */

static struct curl_slist *build_headers(const dv_http_req *req, const char *token, int *failed)
{
    struct curl_slist *list = NULL, *t;
    *failed = 0;
    for (const char *const *p = req->headers; p && *p; p++) {
        if (!(t = curl_slist_append(list, *p))) goto oom;
        list = t;
    }
    /* libcurl would otherwise wait for "100 Continue" before sending larger bodies. */
    if (!(t = curl_slist_append(list, "Expect:"))) goto oom;
    list = t;
    if (token) {
        size_t n = strlen(token) + sizeof "Authorization: Bearer ";
        char *line = malloc(n);
        if (!line) goto oom;
        snprintf(line, n, "Authorization: Bearer %s", token);
        t = curl_slist_append(list, line);
        memset(line, 0, n);
        free(line);
        if (!t) goto oom;
        list = t;
    }
    return list;
oom:
    curl_slist_free_all(list);
    *failed = 1;
    return NULL;
}

static void wipe_slist(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l; l = l->next)
        if (strncasecmp(l->data, "Authorization:", 14) == 0) memset(l->data, 0, strlen(l->data));
    curl_slist_free_all(list);
}

static void setup(dv_http *h, CURL *e, char *errbuf, const dv_http_req *req,
                  struct curl_slist *headers, collect *c)
{
    /* Reset keeps the connection cache, so keep-alive survives; every option is set afresh. */
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->opt.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->opt.timeout_ms);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, h->opt.insecure_skip_tls_verify ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, h->opt.insecure_skip_tls_verify ? 0L : 2L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Several transfers of one driver share a connection (HTTP/2) rather than open more. */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    if (strcasecmp(req->method, "GET") == 0 && !req->body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcasecmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        if (strcasecmp(req->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body || strcasecmp(req->method, "POST") == 0 ||
            strcasecmp(req->method, "PATCH") == 0 || strcasecmp(req->method, "PUT") == 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        }
    }
}

struct dv_http_try {
    CURL *easy;
    struct curl_slist *headers;
    collect c;
    const dv_http_req *req;
    double t0; /* when the try began, for the event hook */
    char errbuf[CURL_ERROR_SIZE];
};

dv_http_try *dv_http_try_begin(dv_http *h, void *easy, const dv_http_req *req, const char *token,
                               dv_http_progress *p, dv_http_resp *resp, dv_error *err)
{
    dv_http_try *t = calloc(1, sizeof *t);
    int failed;
    if (!t) {
        dv_error_set(err, 0, "memory", "out of memory starting a request");
        return NULL;
    }
    t->headers = build_headers(req, token, &failed);
    if (failed) {
        free(t);
        dv_error_set(err, 0, "memory", "out of memory building request headers");
        return NULL;
    }
    t->easy = easy;
    t->req = req;
    t->t0 = now_s();
    t->c.resp = resp;
    resp_reset(resp);
    resp->tries++;
    setup(h, easy, t->errbuf, req, t->headers, &t->c);
    if (h->opt.trace) dv_trace_request(req, t->headers, p->retry + 1, h->opt.max_tries);
    return t;
}

/* Releases a try's headers (wiping the token) once its transfer is over. */
static void try_release(dv_http_try *t)
{
    /* Clear the header pointer before the list (and the token in it) goes away. */
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    wipe_slist(t->headers);
    free(t);
}

void dv_http_try_abort(dv_http_try *t)
{
    if (t) try_release(t);
}

dv_http_verdict dv_http_try_end(dv_http *h, dv_http_try *t, int curl_code, dv_http_progress *p,
                                dv_http_resp *resp, dv_error *err)
{
    const dv_http_req *req = t->req;
    CURLcode rc = (CURLcode)curl_code;
    int sent = 0;
    char where[256];
    url_for_message(req->url, where, sizeof where);
    p->wait_ms = 0;
    p->throttled = 0;
    p->retry_after = -1;
    if (t->c.failed) {
        try_release(t);
        dv_error_set(err, 0, "memory", "out of memory reading the response");
        return DV_HTTP_FAILED;
    }
    double elapsed = now_s() - t->t0;
    if (rc == CURLE_ABORTED_BY_CALLBACK && dv_interrupted()) {
        try_release(t);
        resp->status = 0;
        dv_error_set(err, 0, "interrupted", "%s %s: interrupted", req->method, where);
        emit_event(h, "request", req, resp, elapsed, -1, 0, err);
        return DV_HTTP_FAILED;
    }
    if (rc == CURLE_OK) {
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &resp->status);
        if (!resp->body && !(resp->body = calloc(1, 1))) {
            try_release(t);
            dv_error_set(err, 0, "memory", "out of memory reading the response");
            return DV_HTTP_FAILED;
        }
        if (h->opt.trace) dv_trace_response(req, resp);
    } else {
        curl_off_t pre = 0;
        long reqsize = 0;
        /* Once libcurl reached "pre-transfer" the request may have been written. */
        curl_easy_getinfo(t->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
        curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &reqsize);
        sent = pre > 0 || reqsize > 0;
        resp->status = 0;
        dv_error_set(err, 0, "transport", "%s%s%s", curl_easy_strerror(rc),
                     t->errbuf[0] ? ": " : "", t->errbuf);
        if (h->opt.trace) dv_trace_note("%s %s failed: %s", req->method, where, err->message);
    }
    try_release(t);
    emit_event(h, "request", req, resp, elapsed, -1, 0, rc == CURLE_OK ? NULL : err);

    if (rc == CURLE_OK) {
        int wants_auth = h->auth && !(req->flags & DV_HTTP_NO_AUTH);
        if (resp->status < 400) return DV_HTTP_DONE;
        if (resp->status == 401 && wants_auth && !p->refreshed && dv_auth_can_refresh(h->auth)) {
            /* The token may have been revoked or expired early: one fresh token, one try. */
            p->refreshed = 1;
            if (h->opt.trace) dv_trace_note("401: refreshing the token and trying once more");
            return DV_HTTP_REFRESH;
        }
        dv_http_error_from_response(resp, req->method, req->url, err);
        if (!status_refused(resp->status) && !status_gateway(resp->status)) return DV_HTTP_FAILED;
        if (status_gateway(resp->status) && !is_idempotent(req->method)) {
            append_note(err, " (%s not repeated: the request may have been applied)", req->method);
            return DV_HTTP_FAILED;
        }
        p->throttled = resp->status == 429;
        p->retry_after = err->retry_after;
    } else {
        transport_kind k = classify(rc, sent);
        char reason[sizeof err->message];
        memcpy(reason, err->message, sizeof reason);
        if (k == T_MAYBE_SENT && !is_idempotent(req->method)) {
            dv_error_set(err, 0, "maybe_applied",
                         "%s %s was sent but no answer arrived (%.700s); it may have "
                         "been applied, so it was not repeated",
                         req->method, where, reason);
            return DV_HTTP_FAILED;
        }
        dv_error_set(err, 0, "transport", "%s %s: %.700s", req->method, where, reason);
        if (k == T_FATAL) return DV_HTTP_FAILED;
    }

    int spare = p->throttled && p->spare_429 && p->spared < DV_HTTP_SPARE_429_MAX;
    if (!spare && p->retry + 1 >= h->opt.max_tries) {
        if (p->retry > 0) append_note(err, " (gave up after %d tries)", p->retry + 1);
        return DV_HTTP_FAILED;
    }
    if (p->retry_after >= 0) {
        double ms = p->retry_after * 1000.0;
        p->wait_ms = ms > (double)h->opt.backoff_cap_ms ? h->opt.backoff_cap_ms : (long)ms;
    } else {
        p->wait_ms = backoff_ms(h, p->retry);
    }
    if (h->opt.trace) {
        if (p->retry_after >= 0)
            dv_trace_note("waiting %ld ms before try %d (Retry-After: %g s)", p->wait_ms,
                          p->retry + 2, p->retry_after);
        else
            dv_trace_note("waiting %ld ms before try %d (backoff)", p->wait_ms, p->retry + 2);
    }
    emit_event(h, "retry", req, resp, 0, p->retry_after, p->wait_ms, err);
    if (spare)
        p->spared++;
    else
        p->retry++;
    return DV_HTTP_RETRY;
}

/* A token or secret never goes over plain http:// to another machine (src/urlsafe.h). */
static int refuse_cleartext(const dv_http *h, const dv_http_req *req, dv_error *err)
{
    char host[256];
    int wants_auth = h->auth && !(req->flags & DV_HTTP_NO_AUTH);
    if (h->opt.allow_insecure_http || !(wants_auth || (req->flags & DV_HTTP_SENSITIVE))) return 0;
    if (!dv_url_cleartext_remote(req->url, host, sizeof host)) return 0;
    return dv_error_set(err, 0, "insecure",
                        "refusing to send %s to %s over plain http://: anyone on the network "
                        "could read it; use https://, or set allow_insecure_http = true for a "
                        "network you trust",
                        wants_auth ? "a bearer token" : "credentials", host);
}

const char *dv_http_token(dv_http *h, const dv_http_req *req, int force, dv_error *err)
{
    if (!h->auth || (req->flags & DV_HTTP_NO_AUTH)) return NULL;
    if (refuse_cleartext(h, req, err)) return NULL; /* before a token is even fetched */
    return dv_auth_token(h->auth, h, force, err);
}

int dv_http_wants_auth(const dv_http *h, const dv_http_req *req)
{
    return h->auth && !(req->flags & DV_HTTP_NO_AUTH);
}

long dv_http_auth_generation(const dv_http *h)
{
    return h->auth ? dv_auth_fetch_count(h->auth) : 0;
}

const dv_http_options *dv_http_opts(const dv_http *h)
{
    return &h->opt;
}

int dv_http_request(dv_http *h, const dv_http_req *req, dv_http_resp *resp, dv_error *err)
{
    dv_http_progress p = {0};
    int wants_auth = dv_http_wants_auth(h, req);
    memset(resp, 0, sizeof *resp);
    dv_error_clear(err);
    if (!req->method || !req->url) {
        return dv_error_set(err, 0, "usage", "an HTTP request needs a method and a URL");
    }
    if (refuse_cleartext(h, req, err)) return -1;
    for (;;) {
        const char *token = NULL;
        dv_http_try *t;
        if (dv_interrupted()) {
            char where[256];
            url_for_message(req->url, where, sizeof where);
            return dv_error_set(err, 0, "interrupted", "%s %s: interrupted", req->method, where);
        }
        if (wants_auth && !(token = dv_http_token(h, req, 0, err))) return -1;
        if (!(t = dv_http_try_begin(h, h->curl, req, token, &p, resp, err))) return -1;
        CURLcode rc = curl_easy_perform(h->curl);
        switch (dv_http_try_end(h, t, (int)rc, &p, resp, err)) {
        case DV_HTTP_DONE:
            dv_error_clear(err);
            return 0;
        case DV_HTTP_FAILED:
            return -1;
        case DV_HTTP_REFRESH:
            dv_auth_invalidate(h->auth);
            break;
        case DV_HTTP_RETRY:
            /* Ends early on Ctrl-C; the next round reports it. */
            if (p.wait_ms > 0) dv_interrupt_sleep((double)p.wait_ms / 1000.0);
            break;
        }
    }
}
