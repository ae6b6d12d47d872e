#include "dataverse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "urlsafe.h"
#include "multi.h"

struct dv_conn {
    dv_http *http;   /* one keep-alive connection object, owning the token provider */
    dv_multi *multi; /* every request of the connection: one concurrency budget */
    char *url;
    char *base;
};

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Picks the token provider the options describe; NULL with err->code empty means none. */
static dv_auth *make_auth(const dv_conn_options *o, const char *url, dv_error *err)
{
    dv_auth_options ao;
    dv_auth_options_init(&ao);
    char scope[512];
    if (o->token && *o->token) {
        ao.kind = DV_AUTH_STATIC;
        ao.token = o->token;
    } else if (o->client_secret || o->device_code) {
        if (dv_auth_scope_for_url(url, scope, sizeof scope)) {
            dv_error_set(err, 0, "config", "cannot derive a token scope from the URL");
            return NULL;
        }
        ao.kind = o->device_code ? DV_AUTH_DEVICE_CODE : DV_AUTH_CLIENT_CREDENTIALS;
        ao.tenant_id = o->tenant_id;
        ao.client_id = o->client_id;
        ao.client_secret = o->client_secret;
        ao.authority_host = o->authority_host;
        ao.allow_insecure_http = o->allow_insecure_http;
        ao.scope = scope;
    } else if (o->client_id || o->tenant_id) {
        dv_error_set(err, 0, "config",
                     "a client id needs a client secret (client credentials) or device code "
                     "sign-in");
        return NULL;
    } else {
        return dv_auth_from_env(url, o->allow_insecure_http, err);
    }
    return dv_auth_new(&ao, err);
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
    char host[256];
    if (!opt->allow_insecure_http && dv_url_cleartext_remote(url, host, sizeof host)) {
        dv_error_set(err, 0, "insecure",
                     "refusing the organization URL http://%s: a bearer token would travel "
                     "unencrypted; use https://, or set allow_insecure_http = true for a "
                     "network you trust",
                     host);
        return NULL;
    }
    dv_conn *c = calloc(1, sizeof *c);
    if (!c) {
        dv_error_set(err, 0, "memory", "out of memory");
        return NULL;
    }
    c->url = dup_str(url);
    if (c->url) {
        /* Accept the organization URL with or without a trailing slash or the API path. */
        char *api = strstr(c->url, "/api/data/");
        if (api) *api = '\0';
        size_t n = strlen(c->url);
        while (n && c->url[n - 1] == '/')
            c->url[--n] = '\0';
        c->base = malloc(n + sizeof DV_API_PATH);
        if (c->base) snprintf(c->base, n + sizeof DV_API_PATH, "%s%s", c->url, DV_API_PATH);
    }
    if (!c->url || !c->base) {
        dv_conn_close(c);
        dv_error_set(err, 0, "memory", "out of memory");
        return NULL;
    }
    dv_http_options ho;
    dv_http_options_init(&ho);
    ho.timeout_ms = opt->timeout > 0 ? opt->timeout * 1000 : 0;
    ho.max_tries = opt->retries >= 0 ? opt->retries + 1 : 0;
    ho.trace = opt->trace;
    ho.allow_insecure_http = opt->allow_insecure_http;
    c->http = dv_http_new(&ho, err);
    if (!c->http) {
        dv_conn_close(c);
        return NULL;
    }
    c->multi = dv_multi_new(c->http, opt->concurrency, err);
    if (!c->multi) {
        dv_conn_close(c);
        return NULL;
    }
    dv_error_clear(err);
    dv_auth *a = make_auth(opt, c->url, err);
    if (!a && err->code[0]) {
        dv_conn_close(c);
        return NULL;
    }
    dv_error_clear(err);
    dv_http_set_auth(c->http, a);
    return c;
}

void dv_conn_close(dv_conn *c)
{
    if (!c) return;
    dv_multi_free(c->multi);
    dv_http_free(c->http);
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

void dv_conn_set_events(dv_conn *c, dv_http_event_fn fn, void *ud)
{
    dv_http_set_events(c->http, fn, ud);
}

void dv_conn_describe_auth(const dv_conn *c, char *out, size_t outsz)
{
    dv_auth *a = dv_http_auth(c->http);
    if (a)
        dv_auth_describe(a, out, outsz);
    else
        snprintf(out, outsz, "no sign-in");
}

/* The absolute URL of target, or NULL (err filled). Links the server hands out must point
 * back at the same organization: the token must never be sent anywhere else. */
static char *target_url(const dv_conn *c, const char *target, dv_error *err)
{
    if (strncmp(target, "https://", 8) == 0 || strncmp(target, "http://", 7) == 0) {
        size_t n = strlen(c->url);
        if (strncmp(target, c->url, n) != 0 || (target[n] != '/' && target[n] != '\0')) {
            dv_error_set(err, 0, "url", "refusing a link outside the organization URL");
            return NULL;
        }
        char *u = dup_str(target);
        if (!u) dv_error_set(err, 0, "memory", "out of memory");
        return u;
    }
    while (*target == '/')
        target++;
    size_t n = strlen(c->base) + strlen(target) + 1;
    char *u = malloc(n);
    if (!u) {
        dv_error_set(err, 0, "memory", "out of memory");
        return NULL;
    }
    snprintf(u, n, "%s%s", c->base, target);
    return u;
}

dv_multi *dv_conn_multi(dv_conn *c)
{
    return c->multi;
}

uint64_t dv_conn_submit(dv_conn *c, const char *method, const char *target, const char *body,
                        size_t body_len, const char *const *headers, dv_error *err)
{
    dv_error_clear(err);
    char *url = target_url(c, target, err);
    if (!url) return 0;
    size_t n = 0;
    while (headers && headers[n])
        n++;
    const char **h = malloc(sizeof *h * (n + 5));
    if (!h) {
        free(url);
        dv_error_set(err, 0, "memory", "out of memory");
        return 0;
    }
    size_t k = 0;
    h[k++] = "Accept: application/json";
    h[k++] = "OData-MaxVersion: 4.0";
    h[k++] = "OData-Version: 4.0";
    /* A caller's own Content-Type (a $batch body is multipart/mixed) replaces the JSON one. */
    int own_type = 0;
    for (size_t i = 0; i < n; i++)
        own_type |= strncasecmp(headers[i], "Content-Type:", 13) == 0;
    if (body && !own_type) h[k++] = "Content-Type: application/json; charset=utf-8";
    for (size_t i = 0; i < n; i++)
        h[k++] = headers[i];
    h[k] = NULL;
    dv_http_req req = {method, url, h, body, body ? body_len : 0, 0};
    uint64_t id = dv_multi_submit(c->multi, &req, err);
    free(h);
    free(url);
    return id;
}

int dv_conn_result(dv_conn *c, uint64_t id, dv_http_resp *out, dv_error *err)
{
    int rc = dv_multi_result(c->multi, id, out, err);
    if (rc == -2) {
        memset(out, 0, sizeof *out);
        return dv_error_set(err, 0, "usage", "no finished request %llu on this connection",
                            (unsigned long long)id);
    }
    if (rc == 0) return 0;
    return out->status >= 400 ? 0 : -1;
}

int dv_conn_send(dv_conn *c, const char *method, const char *target, const char *body,
                 size_t body_len, const char *const *headers, dv_http_resp *out, dv_error *err)
{
    memset(out, 0, sizeof *out);
    uint64_t id = dv_conn_submit(c, method, target, body, body_len, headers, err);
    if (!id) return -1;
    dv_multi_wait(c->multi, id);
    return dv_conn_result(c, id, out, err);
}
