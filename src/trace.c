#include "trace.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PREVIEW 240 /* body bytes shown */

static const char *const secret_headers[] = {"authorization", "proxy-authorization", "cookie",
                                             "set-cookie",    "x-ms-client-secret",  NULL};

static const char *const secret_fields[] = {
    "client_secret", "access_token",     "refresh_token", "id_token", "device_code",
    "password",      "client_assertion", "assertion",     "token",    NULL};

void dv_trace_redact_header(const char *name, size_t nlen, const char *value, char *out,
                            size_t outsz)
{
    for (int i = 0; secret_headers[i]; i++) {
        if (strlen(secret_headers[i]) == nlen && strncasecmp(name, secret_headers[i], nlen) == 0) {
            size_t scheme = strcspn(value, " ");
            if (value[scheme] == ' ' && scheme > 0 && scheme < 20)
                snprintf(out, outsz, "%.*s: %.*s [redacted]", (int)nlen, name, (int)scheme, value);
            else
                snprintf(out, outsz, "%.*s: [redacted]", (int)nlen, name);
            return;
        }
    }
    snprintf(out, outsz, "%.*s: %s", (int)nlen, name, value);
}

/* Length of the secret field name starting at text[i], when it is one at a field boundary. */
static size_t secret_at(const char *text, size_t len, size_t i, int *json)
{
    for (int k = 0; secret_fields[k]; k++) {
        size_t n = strlen(secret_fields[k]);
        if (i + n >= len || memcmp(text + i, secret_fields[k], n) != 0) continue;
        if (i > 0 && text[i - 1] == '"' && text[i + n] == '"') {
            *json = 1;
            return n;
        }
        if ((i == 0 || text[i - 1] == '&' || text[i - 1] == '?') && text[i + n] == '=') {
            *json = 0;
            return n;
        }
    }
    return 0;
}

void dv_trace_redact_text(const char *text, size_t len, char *out, size_t outsz)
{
    size_t o = 0, i = 0;
    if (outsz == 0) return;
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (o + 1 < outsz) out[o++] = (c);                                                         \
    } while (0)
    while (i < len) {
        int json = 0;
        size_t n = secret_at(text, len, i, &json);
        if (n) {
            const char *mark = "[redacted]";
            for (size_t k = 0; k < n; k++)
                PUT(text[i + k]);
            i += n;
            if (json) {
                PUT(text[i++]); /* closing quote of the name */
                while (i < len && (text[i] == ' ' || text[i] == ':' || text[i] == '\t')) {
                    PUT(text[i]);
                    i++;
                }
                if (i < len && text[i] == '"') {
                    PUT('"');
                    i++;
                    while (i < len && text[i] != '"')
                        i += text[i] == '\\' ? 2 : 1;
                    for (const char *m = mark; *m; m++)
                        PUT(*m);
                    if (i < len) PUT('"');
                    i++;
                }
            } else {
                PUT(text[i++]); /* '=' */
                while (i < len && text[i] != '&')
                    i++;
                for (const char *m = mark; *m; m++)
                    PUT(*m);
            }
            continue;
        }
        {
            unsigned char c = (unsigned char)text[i++];
            PUT(c < 0x20 || c == 0x7f ? '.' : (char)c);
        }
    }
#undef PUT
    out[o] = 0;
}

void dv_trace_note(const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "dvlua* %s\n", line);
}

static void trace_body(const char *dir, const char *body, size_t len, unsigned flags)
{
    char preview[PREVIEW + 64];
    if (len == 0) return;
    if (flags & DV_HTTP_SENSITIVE) {
        fprintf(stderr, "%s [body: %zu bytes, not shown: it holds credentials]\n", dir, len);
        return;
    }
    /* Redact a window a little larger than the preview so a field cut at the edge still
     * has its value hidden. */
    dv_trace_redact_text(body, len < 4 * PREVIEW ? len : 4 * PREVIEW, preview, PREVIEW + 1);
    fprintf(stderr, "%s [body: %zu bytes] %s%s\n", dir, len, preview, len > PREVIEW ? "..." : "");
}

void dv_trace_request(const dv_http_req *req, const struct curl_slist *headers, int try_no,
                      int max_tries)
{
    char url[1024], line[1200];
    dv_trace_redact_text(req->url, strlen(req->url), url, sizeof url);
    fprintf(stderr, "dvlua> %s %s (try %d of %d)\n", req->method, url, try_no, max_tries);
    for (const struct curl_slist *l = headers; l; l = l->next) {
        const char *colon = strchr(l->data, ':');
        const char *v;
        if (!colon) continue;
        v = colon + 1;
        while (*v == ' ')
            v++;
        if (!*v) continue; /* "Expect:" and other header suppressions */
        dv_trace_redact_header(l->data, (size_t)(colon - l->data), v, line, sizeof line);
        fprintf(stderr, "dvlua> %s\n", line);
    }
    trace_body("dvlua>", req->body, req->body ? req->body_len : 0, req->flags);
}

void dv_trace_response(const dv_http_req *req, const dv_http_resp *resp)
{
    char line[1200];
    fprintf(stderr, "dvlua< HTTP %ld\n", resp->status);
    for (size_t i = 0; i < resp->nheaders; i++) {
        const dv_http_header *h = &resp->headers[i];
        dv_trace_redact_header(h->name, strlen(h->name), h->value, line, sizeof line);
        fprintf(stderr, "dvlua< %s\n", line);
    }
    trace_body("dvlua<", resp->body, resp->body_len, req->flags);
}
