#include "auth.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "interrupt.h"
#include "jscan.h"
#include "urlsafe.h"

struct dv_auth {
    dv_auth_kind kind;
    char *token;         /* the cached access token */
    char *refresh_token; /* device code flow, when the platform issued one */
    char *tenant;
    char *client_id;
    char *client_secret;
    char *scope;
    char *authority; /* "https://host", no trailing slash */
    FILE *prompt;
    long margin_s;
    double expires_at; /* monotonic seconds; 0 for a static token (it never expires here) */
    long fetches;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Overwrites a secret before its memory goes back to the allocator. */
static void wipe_free(char *s)
{
    if (!s) return;
    volatile char *p = s;
    while (*p)
        *p++ = 0;
    free(s);
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

void dv_auth_options_init(dv_auth_options *o)
{
    memset(o, 0, sizeof *o);
}

void dv_auth_free(dv_auth *a)
{
    if (!a) return;
    wipe_free(a->token);
    wipe_free(a->refresh_token);
    wipe_free(a->client_secret);
    free(a->tenant);
    free(a->client_id);
    free(a->scope);
    free(a->authority);
    free(a);
}

static char *normalise_authority(const char *host)
{
    size_t n;
    char *s;
    if (!host || !*host) host = getenv("AZURE_AUTHORITY_HOST");
    if (!host || !*host) host = DV_AUTH_DEFAULT_AUTHORITY;
    n = strlen(host);
    while (n && host[n - 1] == '/')
        n--;
    if (strstr(host, "://")) return strndup(host, n);
    /* A bare host name, as some configurations give it. */
    s = malloc(n + sizeof "https://");
    if (s) snprintf(s, n + sizeof "https://", "https://%.*s", (int)n, host);
    return s;
}

dv_auth *dv_auth_new(const dv_auth_options *o, dv_error *err)
{
    dv_auth *a;
    dv_error_clear(err);
    switch (o->kind) {
    case DV_AUTH_STATIC:
        if (!o->token || !*o->token) {
            dv_error_set(err, 0, "config", "a static token was asked for but none was given");
            return NULL;
        }
        break;
    case DV_AUTH_CLIENT_CREDENTIALS:
        if (!o->tenant_id || !*o->tenant_id || !o->client_id || !*o->client_id ||
            !o->client_secret || !*o->client_secret || !o->scope || !*o->scope) {
            dv_error_set(err, 0, "config",
                         "client credentials need tenant_id, client_id, client_secret and a "
                         "scope; missing:%s%s%s%s",
                         o->tenant_id && *o->tenant_id ? "" : " tenant_id",
                         o->client_id && *o->client_id ? "" : " client_id",
                         o->client_secret && *o->client_secret ? "" : " client_secret",
                         o->scope && *o->scope ? "" : " scope");
            return NULL;
        }
        break;
    case DV_AUTH_DEVICE_CODE:
        if (!o->client_id || !*o->client_id || !o->scope || !*o->scope) {
            dv_error_set(err, 0, "config",
                         "the device code flow needs a client_id (an app registration that "
                         "allows public client flows) and a scope; missing:%s%s",
                         o->client_id && *o->client_id ? "" : " client_id",
                         o->scope && *o->scope ? "" : " scope");
            return NULL;
        }
        break;
    default:
        dv_error_set(err, 0, "config", "unknown authentication kind %d", (int)o->kind);
        return NULL;
    }
    a = calloc(1, sizeof *a);
    if (!a) goto oom;
    a->kind = o->kind;
    a->prompt = o->prompt ? o->prompt : stderr;
    a->margin_s = o->refresh_margin_s > 0 ? o->refresh_margin_s : 300;
    if (o->kind == DV_AUTH_STATIC) {
        if (!(a->token = strdup(o->token))) goto oom;
        return a;
    }
    a->tenant = strdup(o->tenant_id && *o->tenant_id ? o->tenant_id : "organizations");
    a->client_id = strdup(o->client_id);
    a->client_secret = dup_or_null(o->client_secret);
    a->scope = strdup(o->scope);
    a->authority = normalise_authority(o->authority_host);
    if (a->authority && !o->allow_insecure_http) {
        char host[256];
        if (dv_url_cleartext_remote(a->authority, host, sizeof host)) {
            dv_auth_free(a);
            dv_error_set(err, 0, "insecure",
                         "the authority host %s is plain http://: the client secret and tokens "
                         "would travel unencrypted; use https://, or set allow_insecure_http = "
                         "true for a network you trust",
                         host);
            return NULL;
        }
    }
    if (!a->tenant || !a->client_id || !a->scope || !a->authority ||
        (o->client_secret && *o->client_secret && !a->client_secret))
        goto oom;
    return a;
oom:
    dv_auth_free(a);
    dv_error_set(err, 0, "memory", "out of memory creating the token provider");
    return NULL;
}

int dv_auth_scope_for_url(const char *url, char *out, size_t outsz)
{
    const char *p, *host, *end, *at;
    int n;
    if (!url || !(p = strstr(url, "://")) || p == url) return -1;
    host = p + 3;
    end = host + strcspn(host, "/?#");
    at = memchr(host, '@', (size_t)(end - host));
    if (at) host = at + 1;
    if (end == host) return -1;
    n = snprintf(out, outsz, "%.*s://%.*s/.default", (int)(p - url), url, (int)(end - host), host);
    return n > 0 && (size_t)n < outsz ? 0 : -1;
}

dv_auth *dv_auth_from_env(const char *dataverse_url, int allow_insecure_http, dv_error *err)
{
    const char *token = getenv("DATAVERSE_TOKEN");
    const char *tenant = getenv("AZURE_TENANT_ID");
    const char *client = getenv("AZURE_CLIENT_ID");
    const char *secret = getenv("AZURE_CLIENT_SECRET");
    dv_auth_options o;
    char scope[512];
    dv_error_clear(err);
    dv_auth_options_init(&o);
    o.allow_insecure_http = allow_insecure_http;
    if (token && *token) {
        o.kind = DV_AUTH_STATIC;
        o.token = token;
        return dv_auth_new(&o, err);
    }
    if (!(tenant && *tenant) && !(client && *client) && !(secret && *secret)) return NULL;
    if (!dataverse_url || !*dataverse_url) dataverse_url = getenv("DATAVERSE_URL");
    if (!(tenant && *tenant) || !(client && *client) || !(secret && *secret)) {
        dv_error_set(err, 0, "config",
                     "client credentials need AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                     "AZURE_CLIENT_SECRET; missing:%s%s%s",
                     tenant && *tenant ? "" : " AZURE_TENANT_ID",
                     client && *client ? "" : " AZURE_CLIENT_ID",
                     secret && *secret ? "" : " AZURE_CLIENT_SECRET");
        return NULL;
    }
    if (dv_auth_scope_for_url(dataverse_url, scope, sizeof scope)) {
        dv_error_set(err, 0, "config",
                     "client credentials need DATAVERSE_URL (https://<org>.crm.dynamics.com) "
                     "to know the token scope");
        return NULL;
    }
    o.kind = DV_AUTH_CLIENT_CREDENTIALS;
    o.tenant_id = tenant;
    o.client_id = client;
    o.client_secret = secret;
    o.scope = scope;
    return dv_auth_new(&o, err);
}

/* ---- form bodies ---- */

typedef struct buf {
    char *s;
    size_t len, cap;
    int failed;
} buf;

static void buf_put(buf *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = malloc(cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        if (b->s) {
            memcpy(p, b->s, b->len);
            memset(b->s, 0, b->cap); /* may hold a secret */
            free(b->s);
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

/* application/x-www-form-urlencoded: unreserved bytes kept, the rest percent-encoded. */
static void form_field(buf *b, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    if (b->len) buf_put(b, "&", 1);
    buf_put(b, name, strlen(name));
    buf_put(b, "=", 1);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            buf_put(b, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_put(b, e, 3);
        }
    }
}

static void buf_wipe(buf *b)
{
    if (b->s) memset(b->s, 0, b->cap);
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* ---- token endpoint ---- */

static char *endpoint(const dv_auth *a, const char *which)
{
    size_t n = strlen(a->authority) + strlen(a->tenant) + strlen(which) + 32;
    char *u = malloc(n);
    if (u) snprintf(u, n, "%s/%s/oauth2/v2.0/%s", a->authority, a->tenant, which);
    return u;
}

static const char *const form_headers[] = {
    "Content-Type: application/x-www-form-urlencoded",
    "Accept: application/json",
    NULL,
};

/* POSTs a form to the identity platform. On failure err names the endpoint's host and the
 * platform's error code; the form (which holds secrets) never appears in it. */
static int post_form(dv_http *h, const char *url, buf *form, dv_http_resp *resp, dv_error *err)
{
    dv_http_req req = {"POST",  url,       form_headers,
                       form->s, form->len, DV_HTTP_NO_AUTH | DV_HTTP_SENSITIVE};
    if (form->failed) return dv_error_set(err, 0, "memory", "out of memory building a form");
    return dv_http_request(h, &req, resp, err);
}

static void prefix_message(dv_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void prefix_message(dv_error *err, const char *fmt, ...)
{
    char pre[256], old[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    old[sizeof old - 1] = 0;
    /* Truncation is fine: the start of the message says what failed. */
    size_t n = strlen(pre);
    if (n + 2 >= sizeof err->message) n = sizeof err->message - 3;
    memcpy(err->message, pre, n);
    memcpy(err->message + n, ": ", 2);
    snprintf(err->message + n + 2, sizeof err->message - n - 2, "%.*s",
             (int)(sizeof err->message - n - 3), old);
}

/* Takes access_token, expires_in and refresh_token from a token response. */
static int accept_token(dv_auth *a, const dv_http_resp *resp, dv_error *err)
{
    char *tok = malloc(resp->body_len + 1), *rt = NULL;
    double expires_in = 3600;
    long n;
    if (!tok) return dv_error_set(err, 0, "memory", "out of memory reading a token");
    n = dv_jscan_string(resp->body, resp->body_len, "access_token", 1, tok, resp->body_len + 1);
    if (n <= 0) {
        wipe_free(tok);
        return dv_error_set(err, resp->status, "auth",
                            "the token endpoint answered without an access_token");
    }
    if (dv_jscan_number(resp->body, resp->body_len, "expires_in", 1, &expires_in) || expires_in < 0)
        expires_in = 3600;
    if (a->kind == DV_AUTH_DEVICE_CODE) {
        rt = malloc(resp->body_len + 1);
        if (rt && dv_jscan_string(resp->body, resp->body_len, "refresh_token", 1, rt,
                                  resp->body_len + 1) <= 0) {
            wipe_free(rt);
            rt = NULL;
        }
        if (rt) {
            wipe_free(a->refresh_token);
            a->refresh_token = rt;
        }
    }
    wipe_free(a->token);
    a->token = tok;
    a->expires_at = now_s() + expires_in;
    a->fetches++;
    return 0;
}

static int fetch_client_credentials(dv_auth *a, dv_http *h, dv_error *err)
{
    buf form = {0};
    dv_http_resp resp;
    char *url = endpoint(a, "token");
    int rc;
    if (!url) return dv_error_set(err, 0, "memory", "out of memory");
    form_field(&form, "grant_type", "client_credentials");
    form_field(&form, "client_id", a->client_id);
    form_field(&form, "client_secret", a->client_secret);
    form_field(&form, "scope", a->scope);
    rc = post_form(h, url, &form, &resp, err);
    buf_wipe(&form);
    if (rc == 0)
        rc = accept_token(a, &resp, err);
    else
        prefix_message(err, "could not obtain a token for client %s from %s", a->client_id,
                       a->authority);
    dv_http_resp_free(&resp);
    free(url);
    return rc;
}

static int refresh_with_refresh_token(dv_auth *a, dv_http *h, dv_error *err)
{
    buf form = {0};
    dv_http_resp resp;
    char *url = endpoint(a, "token");
    char scope[1024];
    int rc;
    if (!url) return dv_error_set(err, 0, "memory", "out of memory");
    snprintf(scope, sizeof scope, "%s offline_access", a->scope);
    form_field(&form, "grant_type", "refresh_token");
    form_field(&form, "client_id", a->client_id);
    form_field(&form, "refresh_token", a->refresh_token);
    form_field(&form, "scope", scope);
    rc = post_form(h, url, &form, &resp, err);
    buf_wipe(&form);
    if (rc == 0) rc = accept_token(a, &resp, err);
    dv_http_resp_free(&resp);
    free(url);
    return rc;
}

/* The wait between polls ends early on Ctrl-C; the next poll then reports the interrupt. */
static void sleep_s(double s)
{
    dv_interrupt_sleep(s);
}

static int fetch_device_code(dv_auth *a, dv_http *h, dv_error *err)
{
    buf form = {0};
    dv_http_resp resp;
    char *dc_url = endpoint(a, "devicecode"), *tok_url = endpoint(a, "token");
    char scope[1024], msg[1024], uri[512], user_code[128], *device_code = NULL;
    double interval = 5, expires_in = 900, deadline;
    int rc = -1;
    if (!dc_url || !tok_url) {
        dv_error_set(err, 0, "memory", "out of memory");
        goto done;
    }
    /* offline_access brings a refresh token, so a long run need not prompt again. */
    snprintf(scope, sizeof scope, "%s offline_access", a->scope);
    form_field(&form, "client_id", a->client_id);
    form_field(&form, "scope", scope);
    rc = post_form(h, dc_url, &form, &resp, err);
    buf_wipe(&form);
    if (rc) {
        prefix_message(err, "could not start the device code sign-in at %s", a->authority);
        dv_http_resp_free(&resp);
        goto done;
    }
    device_code = malloc(resp.body_len + 1);
    if (!device_code || dv_jscan_string(resp.body, resp.body_len, "device_code", 1, device_code,
                                        resp.body_len + 1) <= 0) {
        rc = dv_error_set(err, resp.status, "auth",
                          "the device code endpoint answered without a device_code");
        dv_http_resp_free(&resp);
        goto done;
    }
    dv_jscan_number(resp.body, resp.body_len, "interval", 1, &interval);
    dv_jscan_number(resp.body, resp.body_len, "expires_in", 1, &expires_in);
    if (dv_jscan_string(resp.body, resp.body_len, "message", 1, msg, sizeof msg) <= 0) {
        if (dv_jscan_string(resp.body, resp.body_len, "verification_uri", 1, uri, sizeof uri) <= 0)
            snprintf(uri, sizeof uri, "https://microsoft.com/devicelogin");
        if (dv_jscan_string(resp.body, resp.body_len, "user_code", 1, user_code,
                            sizeof user_code) <= 0)
            user_code[0] = 0;
        snprintf(msg, sizeof msg, "To sign in, open %s and enter the code %s", uri, user_code);
    }
    dv_http_resp_free(&resp);
    fprintf(a->prompt, "%s\n", msg);
    fflush(a->prompt);

    deadline = now_s() + expires_in;
    if (interval < 0) interval = 5;
    for (;;) {
        sleep_s(interval);
        form_field(&form, "grant_type", "urn:ietf:params:oauth:grant-type:device_code");
        form_field(&form, "client_id", a->client_id);
        form_field(&form, "device_code", device_code);
        rc = post_form(h, tok_url, &form, &resp, err);
        buf_wipe(&form);
        if (rc == 0) {
            rc = accept_token(a, &resp, err);
            dv_http_resp_free(&resp);
            break;
        }
        dv_http_resp_free(&resp);
        if (strcmp(err->code, "authorization_pending") == 0) {
            /* keep polling */
        } else if (strcmp(err->code, "slow_down") == 0) {
            interval += 5; /* RFC 8628, section 3.5 */
        } else {
            prefix_message(err, "device code sign-in failed");
            break;
        }
        if (now_s() + interval > deadline) {
            rc =
                dv_error_set(err, 0, "auth", "device code sign-in expired before it was completed");
            break;
        }
    }
done:
    wipe_free(device_code);
    free(dc_url);
    free(tok_url);
    return rc;
}

const char *dv_auth_token(dv_auth *a, dv_http *h, int force, dv_error *err)
{
    int rc;
    dv_error_clear(err);
    if (a->kind == DV_AUTH_STATIC) return a->token;
    if (a->token && !force && now_s() < a->expires_at - (double)a->margin_s) return a->token;
    if (a->kind == DV_AUTH_CLIENT_CREDENTIALS) {
        rc = fetch_client_credentials(a, h, err);
    } else {
        rc = -1;
        if (a->refresh_token) rc = refresh_with_refresh_token(a, h, err);
        if (rc) {
            wipe_free(a->refresh_token);
            a->refresh_token = NULL;
            rc = fetch_device_code(a, h, err);
        }
    }
    if (rc) {
        if (!err->code[0]) dv_error_set(err, 0, "auth", "could not obtain a token");
        return NULL;
    }
    return a->token;
}

void dv_auth_invalidate(dv_auth *a)
{
    if (a->kind == DV_AUTH_STATIC) return;
    wipe_free(a->token);
    a->token = NULL;
    a->expires_at = 0;
}

int dv_auth_can_refresh(const dv_auth *a)
{
    return a->kind != DV_AUTH_STATIC;
}

long dv_auth_fetch_count(const dv_auth *a)
{
    return a->fetches;
}

void dv_auth_describe(const dv_auth *a, char *out, size_t outsz)
{
    switch (a->kind) {
    case DV_AUTH_STATIC:
        snprintf(out, outsz, "static bearer token");
        break;
    case DV_AUTH_CLIENT_CREDENTIALS:
        snprintf(out, outsz, "client credentials (tenant %s, client %s, authority %s)", a->tenant,
                 a->client_id, a->authority);
        break;
    case DV_AUTH_DEVICE_CODE:
        snprintf(out, outsz, "device code (tenant %s, client %s, authority %s)", a->tenant,
                 a->client_id, a->authority);
        break;
    }
}
