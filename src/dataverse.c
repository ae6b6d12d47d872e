#include "dataverse.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct dv_conn {
    CURL *curl; /* reused so that the TCP/TLS connection stays open between requests */
    char *url;
    char *base;
    char *auth; /* "Authorization: Bearer …", or NULL */
    long timeout;
    int retries;
    int trace;
};

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

dv_conn *dv_conn_open(const dv_conn_options *opt, dv_error *err)
{
    dv_error_clear(err);
    const char *url = opt->url;
    if (!url || !*url) {
        dv_error_set(err, 0, "config", "no organization URL");
        return NULL;
    }
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
        dv_error_set(err, 0, "config", "the organization URL must start with https:// or http://");
        return NULL;
    }
    dv_conn *c = calloc(1, sizeof *c);
    if (!c) {
        dv_error_set(err, 0, "memory", "out of memory");
        return NULL;
    }
    c->url = dup_str(url);
    /* Accept the organization URL with or without a trailing slash or Web API path. */
    if (c->url) {
        char *api = strstr(c->url, "/api/data/");
        if (api) *api = '\0';
        size_t n = strlen(c->url);
        while (n && c->url[n - 1] == '/')
            c->url[--n] = '\0';
        c->base = malloc(n + sizeof DV_API_PATH);
        if (c->base) snprintf(c->base, n + sizeof DV_API_PATH, "%s%s", c->url, DV_API_PATH);
    }
    c->curl = curl_easy_init();
    c->timeout = opt->timeout > 0 ? opt->timeout : 120;
    c->retries = opt->retries >= 0 ? opt->retries : 3;
    c->trace = opt->trace;
    if (!c->url || !c->base || !c->curl || dv_conn_set_token(c, opt->token)) {
        dv_conn_close(c);
        dv_error_set(err, 0, "memory", "out of memory");
        return NULL;
    }
    return c;
}

void dv_conn_close(dv_conn *c)
{
    if (!c) return;
    if (c->curl) curl_easy_cleanup(c->curl);
    if (c->auth) {
        memset(c->auth, 0, strlen(c->auth)); /* the token should not outlive the connection */
        free(c->auth);
    }
    free(c->url);
    free(c->base);
    free(c);
}

const char *dv_conn_url(const dv_conn *c)
{
    return c->url;
}

const char *dv_conn_base(const dv_conn *c)
{
    return c->base;
}

int dv_conn_set_token(dv_conn *c, const char *token)
{
    if (c->auth) {
        memset(c->auth, 0, strlen(c->auth));
        free(c->auth);
        c->auth = NULL;
    }
    if (!token || !*token) return 0;
    size_t n = strlen(token) + sizeof "Authorization: Bearer ";
    c->auth = malloc(n);
    if (!c->auth) return -1;
    snprintf(c->auth, n, "Authorization: Bearer %s", token);
    return 0;
}

void dv_response_free(dv_response *r)
{
    dv_buf_free(&r->body);
    dv_buf_free(&r->headers);
    r->status = 0;
}

const char *dv_response_header(const dv_response *r, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *p = r->headers.p;
    if (!p) return NULL;
    while (*p) {
        const char *eol = strchr(p, '\n');
        if (!eol) eol = p + strlen(p);
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = eol;
            while (e > v && (e[-1] == '\r' || e[-1] == ' '))
                e--;
            if (len) *len = (size_t)(e - v);
            return v;
        }
        p = *eol ? eol + 1 : eol;
    }
    return NULL;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    dv_response *r = ud;
    return dv_buf_put(&r->body, data, size * n) ? 0 : size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    dv_response *r = ud;
    size_t len = size * n;
    /* A new status line (after a 100 Continue or a redirect) starts a fresh header set. */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        r->headers.len = 0;
        if (r->headers.p) r->headers.p[0] = '\0';
        return len;
    }
    size_t keep = len;
    while (keep && (data[keep - 1] == '\r' || data[keep - 1] == '\n'))
        keep--;
    if (!keep) return len;
    if (dv_buf_put(&r->headers, data, keep) || dv_buf_putc(&r->headers, '\n')) return 0;
    return len;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void pause_for(double seconds)
{
    if (seconds <= 0) return;
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

static double retry_after(const dv_response *r)
{
    size_t n;
    const char *v = dv_response_header(r, "Retry-After", &n);
    if (!v || !n) return -1;
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.*s", (int)(n < 31 ? n : 31), v);
    char *end;
    double s = strtod(tmp, &end);
    return end == tmp || s < 0 ? -1 : s;
}

static int retryable(long status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
}

static void copy_request_id(const dv_response *r, dv_error *err)
{
    size_t n;
    const char *v = dv_response_header(r, "x-ms-service-request-id", &n);
    if (!v) v = dv_response_header(r, "REQ_ID", &n);
    if (v) snprintf(err->request_id, sizeof err->request_id, "%.*s", (int)n, v);
}

static int build_url(const dv_conn *c, const char *target, dv_buf *url, dv_error *err)
{
    if (strncmp(target, "https://", 8) == 0 || strncmp(target, "http://", 7) == 0) {
        size_t n = strlen(c->url);
        /* Links from the server must point back at the same organization: the token must
         * never be sent anywhere else. */
        if (strncmp(target, c->url, n) != 0 || (target[n] != '/' && target[n] != '\0'))
            return dv_error_set(err, 0, "url", "refusing a link outside the organization URL");
        return dv_buf_puts(url, target) ? dv_error_set(err, 0, "memory", "out of memory") : 0;
    }
    while (*target == '/')
        target++;
    if (dv_buf_puts(url, c->base) || dv_buf_puts(url, target))
        return dv_error_set(err, 0, "memory", "out of memory");
    return 0;
}

int dv_conn_send(dv_conn *c, const char *method, const char *target, const char *body,
                 size_t body_len, const char *const *headers, dv_response *out, dv_error *err)
{
    dv_error_clear(err);
    memset(out, 0, sizeof *out);
    dv_buf url = {0};
    if (build_url(c, target, &url, err)) return -1;

    struct curl_slist *hl = NULL;
    hl = curl_slist_append(hl, "Accept: application/json");
    hl = curl_slist_append(hl, "OData-MaxVersion: 4.0");
    hl = curl_slist_append(hl, "OData-Version: 4.0");
    if (body) hl = curl_slist_append(hl, "Content-Type: application/json; charset=utf-8");
    if (c->auth) hl = curl_slist_append(hl, c->auth);
    for (const char *const *h = headers; h && *h; h++)
        hl = curl_slist_append(hl, *h);
    hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip for large bodies */

    int rc = -1;
    for (int attempt = 0;; attempt++) {
        CURL *k = c->curl;
        curl_easy_reset(k);
        dv_response_free(out);
        curl_easy_setopt(k, CURLOPT_URL, url.p);
        curl_easy_setopt(k, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(k, CURLOPT_TIMEOUT, c->timeout);
        curl_easy_setopt(k, CURLOPT_CONNECTTIMEOUT, 30L);
        curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(k, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(k, CURLOPT_WRITEDATA, out);
        curl_easy_setopt(k, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(k, CURLOPT_HEADERDATA, out);
        if (strcmp(method, "GET") == 0) {
            curl_easy_setopt(k, CURLOPT_HTTPGET, 1L);
        } else {
            curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST, method);
            if (body || strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0) {
                curl_easy_setopt(k, CURLOPT_POSTFIELDS, body ? body : "");
                curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
            }
        }
        double t0 = now_ms();
        CURLcode cc = curl_easy_perform(k);
        if (cc != CURLE_OK) {
            dv_error_set(err, 0, "transport", "%s %s: %s", method, url.p, curl_easy_strerror(cc));
            if (c->trace) fprintf(stderr, "dvlua: %s %s -> %s\n", method, url.p, err->message);
            break;
        }
        curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &out->status);
        if (c->trace)
            fprintf(stderr, "dvlua: %s %s -> %ld (%.0f ms)\n", method, url.p, out->status,
                    now_ms() - t0);
        if (retryable(out->status) && attempt < c->retries) {
            double ra = retry_after(out);
            double backoff = 0.25 * (double)(1 << (attempt < 5 ? attempt : 5));
            pause_for(ra >= 0 ? (ra > 60 ? 60 : ra) : backoff);
            continue;
        }
        err->retry_after = retry_after(out);
        copy_request_id(out, err);
        rc = 0;
        break;
    }
    curl_slist_free_all(hl);
    dv_buf_free(&url);
    return rc;
}
