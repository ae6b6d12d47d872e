/* multipart/mixed for $batch: delimiters found only at line starts, headers parsed strictly,
 * every count and line length bounded. See multipart.h. */
#include "multipart.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *mp_header_get(const mp_header *h, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0) return h[i].value;
    return NULL;
}

static void headers_free(mp_header *h, int n)
{
    for (int i = 0; i < n; i++)
        free(h[i].name), free(h[i].value);
    free(h);
}

/* The end of the line starting at s (the position of its '\n', or len), and where the next
 * line starts. */
static size_t line_end(const char *b, size_t len, size_t s, size_t *next)
{
    const char *nl = memchr(b + s, '\n', len - s);
    size_t e = nl ? (size_t)(nl - b) : len;
    *next = nl ? e + 1 : len;
    if (e > s && b[e - 1] == '\r') e--;
    return e;
}

static int is_tchar(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Header lines from *pos up to and including the blank line that ends them. Returns 0 with
 * *blank set when the blank line was seen (0 when the text ran out first), or -1. */
static int parse_headers(const char *b, size_t len, size_t *pos, mp_header **out, int *n_out,
                         int *blank, const char *what, char *err, size_t errlen)
{
    mp_header *h = NULL;
    int n = 0;
    size_t s = *pos;
    *blank = 0;
    while (s < len) {
        size_t next, e = line_end(b, len, s, &next);
        if (e == s) {
            *blank = 1;
            s = next;
            break;
        }
        if (e - s > MP_MAX_LINE) {
            headers_free(h, n);
            return fail(err, errlen, "%s: a header line is longer than %d bytes", what,
                        MP_MAX_LINE);
        }
        if (b[s] == ' ' || b[s] == '\t') {
            headers_free(h, n);
            return fail(err, errlen, "%s: folded header lines are not accepted", what);
        }
        const char *colon = memchr(b + s, ':', e - s);
        size_t nl = colon ? (size_t)(colon - (b + s)) : 0;
        for (size_t i = 0; i < nl; i++)
            if (!is_tchar((unsigned char)b[s + i])) nl = 0;
        if (!colon || nl == 0) {
            headers_free(h, n);
            return fail(err, errlen, "%s: '%.*s' is not a header line (Name: value expected)", what,
                        (int)(e - s > 80 ? 80 : e - s), b + s);
        }
        if (n == MP_MAX_HEADERS) {
            headers_free(h, n);
            return fail(err, errlen, "%s: more than %d header lines", what, MP_MAX_HEADERS);
        }
        mp_header *nh = realloc(h, sizeof *h * (size_t)(n + 1));
        if (!nh) {
            headers_free(h, n);
            return fail(err, errlen, "out of memory");
        }
        h = nh;
        size_t vs = (size_t)(colon - b) + 1, ve = e;
        while (vs < ve && (b[vs] == ' ' || b[vs] == '\t'))
            vs++;
        while (ve > vs && (b[ve - 1] == ' ' || b[ve - 1] == '\t'))
            ve--;
        h[n].name = strndup(b + s, nl);
        h[n].value = strndup(b + vs, ve - vs);
        n++;
        s = next;
    }
    *pos = s;
    *out = h;
    *n_out = n;
    return 0;
}

int mp_boundary(const char *ct, char *out, size_t n)
{
    if (!ct) return -1;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "multipart/mixed", 15) != 0) return -1;
    const char *p = ct + 15;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';')
            p++;
        size_t nlen = (size_t)(p - name);
        while (nlen && name[nlen - 1] == ' ')
            nlen--;
        if (*p != '=') continue;
        p++;
        while (*p == ' ')
            p++;
        const char *v = p;
        size_t vlen;
        if (*p == '"') {
            v = ++p;
            while (*p && *p != '"')
                p++;
            if (*p != '"') return -1;
            vlen = (size_t)(p - v);
            p++;
        } else {
            while (*p && *p != ';' && *p != ' ')
                p++;
            vlen = (size_t)(p - v);
        }
        if (nlen == 8 && strncasecmp(name, "boundary", 8) == 0) {
            if (vlen == 0 || vlen > MP_MAX_BOUNDARY || vlen + 1 > n || v[vlen - 1] == ' ')
                return -1;
            for (size_t i = 0; i < vlen; i++)
                if (!isalnum((unsigned char)v[i]) && !strchr("'()+_,-./:=? ", v[i])) return -1;
            memcpy(out, v, vlen);
            out[vlen] = 0;
            return 0;
        }
    }
    return -1;
}

/* 0: not a delimiter line; 1: a delimiter; 2: the close delimiter. */
static int delim_at(const char *b, size_t len, size_t s, const char *bd, size_t bl)
{
    if (s + 2 + bl > len || b[s] != '-' || b[s + 1] != '-' || memcmp(b + s + 2, bd, bl) != 0)
        return 0;
    size_t t = s + 2 + bl;
    int kind = 1;
    if (t + 2 <= len && b[t] == '-' && b[t + 1] == '-') {
        kind = 2;
        t += 2;
    }
    while (t < len && (b[t] == ' ' || b[t] == '\t'))
        t++;
    if (t == len) return kind;
    if (b[t] == '\n' || (b[t] == '\r' && t + 1 < len && b[t + 1] == '\n')) return kind;
    return 0; /* the boundary is a prefix of something longer on this line */
}

static size_t find_delim(const char *b, size_t len, size_t s, const char *bd, size_t bl, int *kind)
{
    while (s < len) {
        if ((*kind = delim_at(b, len, s, bd, bl))) return s;
        const char *nl = memchr(b + s, '\n', len - s);
        if (!nl) break;
        s = (size_t)(nl - b) + 1;
    }
    *kind = 0;
    return len;
}

static void parts_free(mp_part *p, int n)
{
    for (int i = 0; i < n; i++) {
        headers_free(p[i].hdrs, p[i].n_hdrs);
        parts_free(p[i].parts, p[i].n_parts);
    }
    free(p);
}

static int parse_level(const char *b, size_t len, const char *bd, int depth, mp_part **out,
                       int *n_out, char *err, size_t errlen)
{
    size_t bl = strlen(bd);
    int kind;
    size_t d = find_delim(b, len, 0, bd, bl, &kind);
    if (!kind)
        return fail(err, errlen, "no delimiter line '--%s' found in the %s body", bd,
                    depth ? "change set" : "multipart");
    mp_part *parts = NULL;
    int n = 0;
    while (kind == 1) {
        size_t pos;
        line_end(b, len, d, &pos);
        int nk;
        size_t d2 = find_delim(b, len, pos, bd, bl, &nk);
        if (!nk) {
            parts_free(parts, n);
            return fail(err, errlen, "the %s body ends without its closing delimiter '--%s--'",
                        depth ? "change set" : "multipart", bd);
        }
        size_t end = d2;
        if (end > pos && b[end - 1] == '\n') end--;
        if (end > pos && b[end - 1] == '\r') end--;
        if (n == MP_MAX_PARTS) {
            parts_free(parts, n);
            return fail(err, errlen, "more than %d parts", MP_MAX_PARTS);
        }
        mp_part *np = realloc(parts, sizeof *parts * (size_t)(n + 1));
        if (!np) {
            parts_free(parts, n);
            return fail(err, errlen, "out of memory");
        }
        parts = np;
        mp_part *p = &parts[n++];
        memset(p, 0, sizeof *p);
        char what[64];
        snprintf(what, sizeof what, "%s %d", depth ? "change set part" : "part", n);
        int blank;
        size_t hs = pos;
        if (parse_headers(b, end, &hs, &p->hdrs, &p->n_hdrs, &blank, what, err, errlen)) {
            n--;
            parts_free(parts, n);
            return -1;
        }
        if (!blank || p->n_hdrs == 0) {
            fail(err, errlen, "%s: %s", what,
                 p->n_hdrs ? "its headers are not followed by a blank line"
                           : "no headers (Content-Type expected)");
            parts_free(parts, n);
            return -1;
        }
        p->body = b + hs;
        p->body_len = end - hs;
        char sub[MP_MAX_BOUNDARY + 1];
        const char *ct = mp_header_get(p->hdrs, p->n_hdrs, "Content-Type");
        if (ct && strncasecmp(ct, "multipart/", 10) == 0) {
            if (depth) {
                parts_free(parts, n);
                return fail(err, errlen, "%s: a change set cannot contain another multipart body",
                            what);
            }
            if (mp_boundary(ct, sub, sizeof sub)) {
                fail(err, errlen, "%s: '%.200s' is not multipart/mixed with a valid boundary", what,
                     ct); /* before ct is freed with its part */
                parts_free(parts, n);
                return -1;
            }
            if (strcmp(sub, bd) == 0) {
                parts_free(parts, n);
                return fail(err, errlen, "%s: a change set cannot reuse the batch boundary", what);
            }
            p->is_multipart = 1;
            char inner[512];
            if (parse_level(p->body, p->body_len, sub, depth + 1, &p->parts, &p->n_parts, inner,
                            sizeof inner)) {
                parts_free(parts, n);
                return fail(err, errlen, "%s: %s", what, inner);
            }
        }
        d = d2;
        kind = nk;
    }
    *out = parts;
    *n_out = n;
    return 0;
}

int mp_parse(const char *body, size_t len, const char *boundary, mp_doc *out, char *err,
             size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!body || !boundary || !*boundary || strlen(boundary) > MP_MAX_BOUNDARY)
        return fail(err, errlen, "no valid boundary");
    return parse_level(body, len, boundary, 0, &out->parts, &out->n_parts, err, errlen);
}

void mp_free(mp_doc *d)
{
    parts_free(d->parts, d->n_parts);
    d->parts = NULL;
    d->n_parts = 0;
}

int mp_parse_http(const char *b, size_t len, mp_http *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t next, e = line_end(b, len, 0, &next);
    if (e == 0) return fail(err, errlen, "the request line is missing (METHOD URL HTTP/1.1)");
    if (e > MP_MAX_LINE)
        return fail(err, errlen, "the request line is longer than %d bytes", MP_MAX_LINE);
    const char *sp1 = memchr(b, ' ', e);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(b + e - sp1 - 1)) : NULL;
    size_t ml = sp1 ? (size_t)(sp1 - b) : 0;
    int ok = sp2 && ml > 0 && ml < sizeof out->method && sp2 > sp1 + 1;
    for (size_t i = 0; ok && i < ml; i++)
        ok = isupper((unsigned char)b[i]);
    if (ok) {
        size_t vl = (size_t)(b + e - sp2 - 1);
        ok = (vl == 8 &&
              (memcmp(sp2 + 1, "HTTP/1.1", 8) == 0 || memcmp(sp2 + 1, "HTTP/1.0", 8) == 0));
    }
    if (!ok)
        return fail(err, errlen, "'%.*s' is not a request line (METHOD URL HTTP/1.1 expected)",
                    (int)(e > 80 ? 80 : e), b);
    memcpy(out->method, b, ml);
    out->method[ml] = 0;
    out->target = strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    size_t pos = next;
    int blank;
    if (parse_headers(b, len, &pos, &out->hdrs, &out->n_hdrs, &blank, "request", err, errlen)) {
        free(out->target);
        out->target = NULL;
        return -1;
    }
    out->body = b + pos;
    out->body_len = len - pos;
    return 0;
}

void mp_http_free(mp_http *h)
{
    free(h->target);
    headers_free(h->hdrs, h->n_hdrs);
    memset(h, 0, sizeof *h);
}
