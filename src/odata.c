#include "odata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dv_buf_put(dv_buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int dv_buf_puts(dv_buf *b, const char *s)
{
    return dv_buf_put(b, s, strlen(s));
}

int dv_buf_putc(dv_buf *b, char c)
{
    return dv_buf_put(b, &c, 1);
}

void dv_buf_free(dv_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int passes(unsigned char c, dv_pct_where where)
{
    if (unreserved(c)) return 1;
    /* Characters OData syntax itself uses; readable URLs, and safe where they stand. */
    if (where == DV_PCT_PATH) return c && strchr("'(),=:@!$*", c) != NULL;
    return c && strchr("'(),:@!$*/", c) != NULL;
}

int dv_odata_pct_encode(dv_buf *b, const char *s, size_t n, dv_pct_where where)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (passes(c, where)) {
            if (dv_buf_putc(b, (char)c)) return -1;
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            if (dv_buf_put(b, e, 3)) return -1;
        }
    }
    return 0;
}

int dv_odata_string_literal(dv_buf *b, const char *s, size_t n)
{
    if (dv_buf_putc(b, '\'')) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'' && dv_buf_putc(b, '\'')) return -1;
        if (dv_buf_putc(b, s[i])) return -1;
    }
    return dv_buf_putc(b, '\'');
}

int dv_odata_is_guid(const char *s, size_t n)
{
    if (n != 36) return 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

int dv_odata_is_identifier(const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const dv_key_part *)a)->name, ((const dv_key_part *)b)->name);
}

int dv_odata_key(dv_buf *b, dv_key_part *parts, size_t n, char *err, size_t errlen)
{
    if (n == 0) {
        snprintf(err, errlen, "an alternate key needs at least one column");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!dv_odata_is_identifier(parts[i].name, strlen(parts[i].name))) {
            snprintf(err, errlen, "'%.64s' is not a column name", parts[i].name);
            return -1;
        }
    }
    qsort(parts, n, sizeof *parts, by_name);
    dv_buf lit = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const dv_key_part *k = &parts[i];
        if (i && dv_buf_putc(b, ',')) rc = -1;
        if (!rc && (dv_buf_puts(b, k->name) || dv_buf_putc(b, '='))) rc = -1;
        if (rc) break;
        lit.len = 0;
        if (k->kind == DV_KEY_STRING) {
            if (dv_odata_string_literal(&lit, k->value, k->value_len)) rc = -1;
        } else if (dv_buf_put(&lit, k->value, k->value_len)) {
            rc = -1;
        }
        if (!rc && dv_odata_pct_encode(b, lit.p, lit.len, DV_PCT_PATH)) rc = -1;
    }
    dv_buf_free(&lit);
    if (rc) snprintf(err, errlen, "out of memory building a key");
    return rc;
}

int dv_odata_query_param(dv_buf *b, int *started, const char *name, const char *value, size_t n)
{
    if (dv_buf_putc(b, *started ? '&' : '?') || dv_buf_puts(b, name) || dv_buf_putc(b, '='))
        return -1;
    *started = 1;
    return dv_odata_pct_encode(b, value, n, DV_PCT_QUERY);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int dv_odata_query_value(const char *url, const char *name, dv_buf *out)
{
    const char *q = strchr(url, '?');
    size_t nl = strlen(name);
    while (q) {
        q++;
        if (strncmp(q, name, nl) == 0 && q[nl] == '=') {
            const char *v = q + nl + 1;
            while (*v && *v != '&' && *v != '#') {
                int h, l;
                char c = *v;
                if (c == '%' && (h = hexval((unsigned char)v[1])) >= 0 &&
                    (l = hexval((unsigned char)v[2])) >= 0) {
                    c = (char)(h * 16 + l);
                    v += 2;
                }
                if (dv_buf_putc(out, c)) return -1;
                v++;
            }
            if (!out->p && dv_buf_put(out, "", 0)) return -1;
            return 1;
        }
        q = strchr(q, '&');
    }
    return 0;
}
